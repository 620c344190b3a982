"""LearningPathService: each method maps the request, calls a use case, maps the result."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import grpc

from recommender.api import mapping
from recommender.api.interceptors import TENANT
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.api.status import code_of, field_of, message_of, translated, translated_stream
from recommender.domain.assessment import AssessmentEvent
from recommender.domain.path import LearningPath
from recommender.errors import InvalidInput, LubanError, clipped
from recommender.service.app import App
from recommender.service.recommend import PathForm, plan_cohort


def tenant_of(context: grpc.ServicerContext) -> str:
    """The caller's tenant, set by the auth interceptor (the default tenant when auth is off)."""
    return TENANT.get()


class PathMessages(PathForm[pb.LearningPath]):
    """Paths served as their response message: rendered once per planned path (the path cache
    keeps the message, so a page view with nothing new maps nothing), stored for the other
    processes as its wire bytes. Every call served the same path gets the same message object,
    which nothing mutates."""

    name = pb.LearningPath.DESCRIPTOR.full_name
    shared = True

    def __init__(self) -> None:
        self._reasons = mapping.ReasonMessages()

    def render(self, path: LearningPath) -> pb.LearningPath:
        return mapping.path_to_proto(path, self._reasons)

    def dump(self, rendered: pb.LearningPath) -> bytes:
        return rendered.SerializeToString()

    def load(self, data: bytes) -> pb.LearningPath:
        return pb.LearningPath.FromString(data)


class LearningPathServicer(pb_grpc.LearningPathServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app
        self._path_messages = PathMessages()

    # learners -------------------------------------------------------------------------------
    @translated
    def UpsertLearner(self, request: pb.UpsertLearnerRequest, context: grpc.ServicerContext) -> pb.Learner:
        if not request.HasField("learner"):
            raise InvalidInput.of("learner", "is required")
        learner = self.app.learners.upsert(tenant_of(context), mapping.learner_from_proto(request.learner))
        return mapping.learner_to_proto(learner)

    @translated
    def GetLearner(self, request: pb.GetLearnerRequest, context: grpc.ServicerContext) -> pb.Learner:
        return mapping.learner_to_proto(self.app.learners.get(tenant_of(context), request.learner_id))

    @translated
    def DeleteLearner(
        self, request: pb.DeleteLearnerRequest, context: grpc.ServicerContext
    ) -> pb.DeleteLearnerResponse:
        deleted, events, models = self.app.learners.delete(tenant_of(context), request.learner_id)
        return pb.DeleteLearnerResponse(
            learner_id=request.learner_id, deleted=deleted, events_deleted=events, models_updated=models
        )

    # assessments ----------------------------------------------------------------------------
    @translated
    def RecordAssessment(
        self, request: pb.RecordAssessmentRequest, context: grpc.ServicerContext
    ) -> pb.RecordAssessmentResponse:
        if not request.HasField("result"):
            raise InvalidInput.of("result", "is required")
        event = mapping.event_from_proto(request.result, self.app.clock())
        profile, duplicate = self.app.learners.record(tenant_of(context), event)
        response = pb.RecordAssessmentResponse(duplicate=duplicate)
        mapping.profile_to_proto(profile, into=response.profile)
        return response

    @translated
    def RecordAssessments(
        self, request_iterator: Iterator[pb.RecordAssessmentsRequest], context: grpc.ServicerContext
    ) -> pb.IngestSummary:
        tenant = tenant_of(context)
        summary = pb.IngestSummary()
        max_batch = self.app.settings.max_batch
        mapped: list[tuple[list[int], list[pb.RejectedResult]]] = []  # per message, in order

        def events_of(message: pb.RecordAssessmentsRequest, index: int) -> list[AssessmentEvent]:
            """A message's results as events (on the stream's writer thread, in order), noting
            where each came from and which could not be mapped."""
            now = self.app.clock()
            events, rejected, positions = [], [], []
            for offset, result in enumerate(message.results):
                try:
                    events.append(mapping.event_from_proto(result, now))
                    positions.append(index + offset)
                except InvalidInput as exc:
                    rejected.append(_rejected(index + offset, result.event_id, exc))
            mapped.append((positions, rejected))
            return events

        def batches() -> Iterator[Callable[[], list[AssessmentEvent]]]:
            index = 0
            for message in request_iterator:
                if len(message.results) > max_batch:
                    raise InvalidInput.of(
                        "results", f"{len(message.results)} results in one message; at most {max_batch}"
                    )
                yield functools.partial(events_of, message, index)
                index += len(message.results)

        for k, outcome in enumerate(self.app.learners.record_stream(tenant, batches())):
            positions, rejected = mapped[k]
            mapped[k] = ([], [])
            summary.accepted += outcome.accepted
            summary.duplicates += outcome.duplicates
            rejected += [_rejected(positions[r.index], r.event_id, r.error) for r in outcome.rejected]
            summary.rejected.extend(sorted(rejected, key=lambda r: r.index))
        return summary

    @translated
    def GetSkillProfile(self, request: pb.GetSkillProfileRequest, context: grpc.ServicerContext) -> pb.SkillProfile:
        return mapping.profile_to_proto(self.app.learners.profile(tenant_of(context), request.learner_id))

    # catalog --------------------------------------------------------------------------------
    @translated
    def UpsertCatalog(self, request: pb.UpsertCatalogRequest, context: grpc.ServicerContext) -> pb.CatalogSummary:
        skills, modules, roles = mapping.catalog_parts_from_proto(request)
        inherit = request.inherit_shared if request.HasField("inherit_shared") else None
        catalog = self.app.catalogs.upsert(
            skills, modules, roles, replace=request.replace, tenant=tenant_of(context), inherit=inherit
        )
        return mapping.catalog_summary(catalog)

    @translated
    def GetCatalog(self, request: pb.GetCatalogRequest, context: grpc.ServicerContext) -> pb.GetCatalogResponse:
        return mapping.catalog_to_proto(self.app.catalogs.current(tenant_of(context)))

    @translated
    def UpsertSharedCatalog(
        self, request: pb.UpsertSharedCatalogRequest, context: grpc.ServicerContext
    ) -> pb.CatalogSummary:
        skills, modules, roles = mapping.catalog_parts_from_proto(request)
        return mapping.catalog_summary(self.app.catalogs.upsert(skills, modules, roles, replace=request.replace))

    @translated
    def GetSharedCatalog(
        self, request: pb.GetSharedCatalogRequest, context: grpc.ServicerContext
    ) -> pb.GetCatalogResponse:
        return mapping.catalog_to_proto(self.app.catalogs.shared())

    # paths ----------------------------------------------------------------------------------
    @translated
    def RecommendPath(self, request: pb.RecommendPathRequest, context: grpc.ServicerContext) -> pb.LearningPath:
        return self.app.paths.serve(tenant_of(context), mapping.path_request_from_proto(request), self._path_messages)

    @translated_stream
    def GeneratePaths(
        self, request: pb.GeneratePathsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GeneratePathsResponse]:
        limit = self.app.settings.max_ids_per_request
        if len(request.learners) > limit:
            raise InvalidInput.of("learners", f"{len(request.learners)} learners; at most {limit} per request")
        outcomes = plan_cohort(
            self.app.paths,
            tenant_of(context),
            [mapping.learner_from_proto(x) for x in request.learners],
            max_steps=request.max_steps,
            locale=request.locale,
            persist=request.persist,
            learner_service=self.app.learners,
            keep_going=context.is_active,
        )
        for outcome in outcomes:
            yield mapping.cohort_outcome_to_proto(outcome)

    # models ---------------------------------------------------------------------------------
    @translated
    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        infos = self.app.models.list(tenant_of(context))
        active = next((i.version for i in infos if i.active), "")
        return pb.ListModelsResponse(models=[mapping.model_info_to_proto(i) for i in infos], active_version=active)

    @translated
    def ActivateModel(
        self, request: pb.ActivateModelRequest, context: grpc.ServicerContext
    ) -> pb.ActivateModelResponse:
        info, previous = self.app.models.activate(request.version, tenant_of(context))
        return pb.ActivateModelResponse(model=mapping.model_info_to_proto(info), previous_version=previous)

    @translated
    def TrainModel(self, request: pb.TrainModelRequest, context: grpc.ServicerContext) -> pb.TrainModelResponse:
        config = mapping.train_config_from_proto(request)
        job = self.app.training.start_job(config, force=request.force, tenant=tenant_of(context))
        return pb.TrainModelResponse(job_id=job.job_id)

    @translated
    def GetTrainingJob(self, request: pb.GetTrainingJobRequest, context: grpc.ServicerContext) -> pb.TrainingJob:
        return mapping.training_job_to_proto(self.app.training.job(request.job_id, tenant_of(context)))


def _rejected(index: int, event_id: str, error: LubanError) -> pb.RejectedResult:
    return pb.RejectedResult(
        index=index,
        event_id=clipped(event_id),
        field=field_of(error),
        reason=message_of(error),
        code=code_of(error).value[0],
    )
