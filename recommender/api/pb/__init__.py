"""Generated protobuf modules (`make proto`); not committed."""
