"""The demo catalog's names in the languages it teaches besides English and Chinese (fr, ar, th,
vi, id, ru), so reason texts name skills, modules and roles in the learner's language. Used by
tools/build_demo_catalog.py; one tuple per entry, in LANGUAGES order."""

from __future__ import annotations

LANGUAGES = ("fr", "ar", "th", "vi", "id", "ru")

# skill_id: names in LANGUAGES order
SKILL_NAMES: dict[str, tuple[str, str, str, str, str, str]] = {
    "zh-pinyin": ("Pinyin et tons", "البينيين والنغمات", "พินอินและวรรณยุกต์", "Pinyin và thanh điệu", "Pinyin dan nada", "Пиньинь и тоны"),
    "zh-hsk1": ("Chinois HSK 1", "الصينية HSK 1", "ภาษาจีน HSK 1", "Tiếng Trung HSK 1", "Bahasa Tionghoa HSK 1", "Китайский HSK 1"),
    "zh-hsk2": ("Chinois HSK 2", "الصينية HSK 2", "ภาษาจีน HSK 2", "Tiếng Trung HSK 2", "Bahasa Tionghoa HSK 2", "Китайский HSK 2"),
    "zh-hsk3": ("Chinois HSK 3", "الصينية HSK 3", "ภาษาจีน HSK 3", "Tiếng Trung HSK 3", "Bahasa Tionghoa HSK 3", "Китайский HSK 3"),
    "zh-hsk4": ("Chinois HSK 4", "الصينية HSK 4", "ภาษาจีน HSK 4", "Tiếng Trung HSK 4", "Bahasa Tionghoa HSK 4", "Китайский HSK 4"),
    "zh-hanzi-reading": ("Lecture des caractères chinois", "قراءة الحروف الصينية", "การอ่านอักษรจีน", "Đọc chữ Hán", "Membaca aksara Tionghoa", "Чтение иероглифов"),
    "zh-workplace": ("Chinois de communication au travail", "التواصل بالصينية في العمل", "ภาษาจีนเพื่อการสื่อสารในที่ทำงาน", "Giao tiếp tiếng Trung nơi làm việc", "Komunikasi bahasa Tionghoa di tempat kerja", "Китайский для общения на работе"),
    "zh-tech-manufacturing": ("Chinois technique de la fabrication", "الصينية التقنية للتصنيع", "ภาษาจีนเทคนิคด้านการผลิต", "Tiếng Trung kỹ thuật chế tạo", "Bahasa Tionghoa teknik manufaktur", "Технический китайский для производства"),
    "zh-tech-electrical": ("Chinois technique de l'électricité", "الصينية التقنية للأعمال الكهربائية", "ภาษาจีนเทคนิคด้านไฟฟ้า", "Tiếng Trung kỹ thuật điện", "Bahasa Tionghoa teknik kelistrikan", "Технический китайский для электрики"),
    "zh-business-ecommerce": ("Chinois des affaires pour l'e-commerce", "الصينية التجارية للتجارة الإلكترونية", "ภาษาจีนธุรกิจสำหรับอีคอมเมิร์ซ", "Tiếng Trung thương mại điện tử", "Bahasa Tionghoa bisnis e-commerce", "Деловой китайский для электронной торговли"),
    "zh-customer-service": ("Chinois du service client", "الصينية لخدمة العملاء", "ภาษาจีนสำหรับบริการลูกค้า", "Tiếng Trung chăm sóc khách hàng", "Bahasa Tionghoa layanan pelanggan", "Китайский для обслуживания клиентов"),
    "workshop-safety": ("Sécurité en atelier", "السلامة في الورشة", "ความปลอดภัยในโรงงาน", "An toàn xưởng", "Keselamatan bengkel", "Безопасность в цеху"),
    "lean-5s": ("Production lean et 5S", "الإنتاج الرشيق و5S", "การผลิตแบบลีนและ 5ส", "Sản xuất tinh gọn và 5S", "Produksi ramping dan 5S", "Бережливое производство и 5S"),
    "mech-drawing": ("Lecture de dessins techniques", "قراءة الرسومات الميكانيكية", "การอ่านแบบเครื่องกล", "Đọc bản vẽ cơ khí", "Membaca gambar teknik", "Чтение чертежей"),
    "cad-2d": ("Dessin CAO 2D", "الرسم بالحاسوب ثنائي الأبعاد", "การเขียนแบบ CAD 2 มิติ", "Vẽ CAD 2D", "Gambar CAD 2D", "Черчение в САПР 2D"),
    "cad-3d": ("Modélisation CAO 3D", "النمذجة بالحاسوب ثلاثية الأبعاد", "การสร้างแบบจำลอง CAD 3 มิติ", "Mô hình CAD 3D", "Pemodelan CAD 3D", "3D-моделирование в САПР"),
    "metrology": ("Mesure et métrologie", "القياس والمترولوجيا", "การวัดและมาตรวิทยา", "Đo lường", "Pengukuran dan metrologi", "Измерения и метрология"),
    "gdt": ("Cotation et tolérancement géométrique", "الأبعاد والتفاوتات الهندسية", "การกำหนดขนาดและพิกัดความเผื่อเชิงเรขาคณิต", "Dung sai hình học", "Dimensi dan toleransi geometris", "Геометрические допуски"),
    "materials": ("Matériaux de l'ingénieur", "المواد الهندسية", "วัสดุวิศวกรรม", "Vật liệu kỹ thuật", "Material teknik", "Конструкционные материалы"),
    "machining-basics": ("Bases de l'usinage", "أساسيات التشغيل الآلي", "พื้นฐานงานกลึงและกัด", "Cơ bản về gia công cơ khí", "Dasar-dasar pemesinan", "Основы механообработки"),
    "cnc-operation": ("Conduite de machines CNC", "تشغيل آلات CNC", "การควบคุมเครื่อง CNC", "Vận hành máy CNC", "Pengoperasian mesin CNC", "Работа на станках с ЧПУ"),
    "cnc-gcode": ("Programmation CNC en code G", "برمجة CNC بلغة G-code", "การเขียนโปรแกรม CNC ด้วย G-code", "Lập trình CNC bằng mã G", "Pemrograman CNC dengan G-code", "Программирование ЧПУ в G-коде"),
    "cnc-cam": ("Programmation FAO", "البرمجة بمساعدة الحاسوب (CAM)", "การเขียนโปรแกรม CAM", "Lập trình CAM", "Pemrograman CAM", "Программирование в CAM"),
    "cnc-setup": ("Réglage et bridage CNC", "إعداد وتثبيت قطع CNC", "การตั้งเครื่องและจับยึดชิ้นงาน CNC", "Gá đặt và thiết lập máy CNC", "Penyetelan dan pencekaman CNC", "Наладка и закрепление на ЧПУ"),
    "cnc-maintenance": ("Maintenance des machines CNC", "صيانة آلات CNC", "การบำรุงรักษาเครื่อง CNC", "Bảo trì máy CNC", "Perawatan mesin CNC", "Обслуживание станков с ЧПУ"),
    "welding-safety": ("Sécurité en soudage", "السلامة في اللحام", "ความปลอดภัยในงานเชื่อม", "An toàn hàn", "Keselamatan pengelasan", "Безопасность при сварке"),
    "welding-mig": ("Soudage MIG/MAG", "لحام MIG/MAG", "การเชื่อม MIG/MAG", "Hàn MIG/MAG", "Pengelasan MIG/MAG", "Сварка MIG/MAG"),
    "welding-tig": ("Soudage TIG", "لحام TIG", "การเชื่อม TIG", "Hàn TIG", "Pengelasan TIG", "Сварка TIG"),
    "welding-robot": ("Programmation de robots de soudage", "برمجة روبوتات اللحام", "การเขียนโปรแกรมหุ่นยนต์เชื่อม", "Lập trình robot hàn", "Pemrograman robot las", "Программирование сварочных роботов"),
    "weld-inspection": ("Contrôle des soudures et CND", "فحص اللحام والاختبار غير الإتلافي", "การตรวจสอบแนวเชื่อมและการทดสอบแบบไม่ทำลาย", "Kiểm tra mối hàn và NDT", "Inspeksi las dan NDT", "Контроль сварных швов и НК"),
    "quality-inspection": ("Contrôle qualité", "فحص الجودة", "การตรวจสอบคุณภาพ", "Kiểm tra chất lượng", "Inspeksi mutu", "Контроль качества"),
    "spc": ("Maîtrise statistique des procédés", "التحكم الإحصائي في العمليات", "การควบคุมกระบวนการเชิงสถิติ", "Kiểm soát quá trình bằng thống kê", "Pengendalian proses statistik", "Статистическое управление процессами"),
    "tooling": ("Conception d'outillages et de montages", "تصميم العُدد والمثبتات", "การออกแบบเครื่องมือและจิ๊ก", "Thiết kế đồ gá", "Desain perkakas dan jig", "Проектирование оснастки"),
    "electrical-safety": ("Sécurité électrique", "السلامة الكهربائية", "ความปลอดภัยทางไฟฟ้า", "An toàn điện", "Keselamatan listrik", "Электробезопасность"),
    "circuits": ("Bases des circuits", "أساسيات الدوائر الكهربائية", "พื้นฐานวงจรไฟฟ้า", "Cơ bản về mạch điện", "Dasar-dasar rangkaian", "Основы электрических цепей"),
    "wiring": ("Câblage et armoires électriques", "التمديدات الكهربائية واللوحات", "การเดินสายไฟและตู้ควบคุม", "Đi dây và tủ điện", "Pengawatan dan panel listrik", "Электромонтаж и щиты"),
    "motor-control": ("Commande de moteurs", "التحكم في المحركات", "การควบคุมมอเตอร์", "Điều khiển động cơ", "Kendali motor", "Управление двигателями"),
    "plc-ladder": ("Programmation d'automates en ladder", "برمجة PLC بالمخطط السلمي", "การเขียนโปรแกรม PLC แบบแลดเดอร์", "Lập trình PLC dạng bậc thang", "Pemrograman PLC ladder", "Программирование ПЛК на LD"),
    "plc-advanced": ("Programmation avancée d'automates", "برمجة PLC المتقدمة", "การเขียนโปรแกรม PLC ขั้นสูง", "Lập trình PLC nâng cao", "Pemrograman PLC lanjutan", "Продвинутое программирование ПЛК"),
    "hmi-scada": ("IHM et SCADA", "واجهات التشغيل وSCADA", "HMI และ SCADA", "HMI và SCADA", "HMI dan SCADA", "HMI и SCADA"),
    "sensors": ("Capteurs et actionneurs", "الحساسات والمشغلات", "เซนเซอร์และแอคชูเอเตอร์", "Cảm biến và cơ cấu chấp hành", "Sensor dan aktuator", "Датчики и исполнительные механизмы"),
    "industrial-networks": ("Réseaux industriels", "الشبكات الصناعية", "เครือข่ายอุตสาหกรรม", "Mạng công nghiệp", "Jaringan industri", "Промышленные сети"),
    "pid-control": ("Systèmes de régulation et PID", "أنظمة التحكم وPID", "ระบบควบคุมและ PID", "Hệ thống điều khiển và PID", "Sistem kendali dan PID", "Системы управления и ПИД"),
    "robot-operation": ("Conduite de robots industriels", "تشغيل الروبوتات الصناعية", "การควบคุมหุ่นยนต์อุตสาหกรรม", "Vận hành robot công nghiệp", "Pengoperasian robot industri", "Работа с промышленными роботами"),
    "troubleshooting": ("Dépannage électrique", "تشخيص الأعطال الكهربائية", "การวิเคราะห์ปัญหาทางไฟฟ้า", "Chẩn đoán sự cố điện", "Diagnosis gangguan listrik", "Поиск электрических неисправностей"),
    "ecom-platforms": ("Gestion de plateformes de vente", "تشغيل منصات البيع", "การบริหารแพลตฟอร์มการขาย", "Vận hành sàn thương mại", "Operasional platform marketplace", "Работа с торговыми площадками"),
    "product-listing": ("Optimisation des fiches produit", "تحسين عرض المنتجات", "การปรับปรุงรายการสินค้า", "Tối ưu trang sản phẩm", "Optimasi daftar produk", "Оптимизация карточек товаров"),
    "marketplace-amazon": ("Vente sur marketplaces type Amazon", "التشغيل على منصات مثل أمازون", "การบริหารร้านบนแพลตฟอร์มแบบ Amazon", "Vận hành sàn kiểu Amazon", "Operasional marketplace ala Amazon", "Работа на площадках типа Amazon"),
    "marketplace-tiktok": ("Commerce social type TikTok", "التجارة الاجتماعية على غرار تيك توك", "การขายผ่านโซเชียลแบบ TikTok", "Thương mại xã hội kiểu TikTok", "Social commerce ala TikTok", "Социальная коммерция типа TikTok"),
    "live-streaming": ("Vente en direct (live)", "البيع بالبث المباشر", "การขายผ่านไลฟ์สด", "Bán hàng qua livestream", "Penjualan lewat siaran langsung", "Продажи в прямом эфире"),
    "content-marketing": ("Marketing de contenu", "التسويق بالمحتوى", "การตลาดเชิงเนื้อหา", "Tiếp thị nội dung", "Pemasaran konten", "Контент-маркетинг"),
    "multilingual-marketing": ("Rédaction marketing multilingue", "كتابة التسويق بعدة لغات", "การเขียนข้อความการตลาดหลายภาษา", "Viết nội dung tiếp thị đa ngôn ngữ", "Penulisan pemasaran multibahasa", "Многоязычные маркетинговые тексты"),
    "digital-ads": ("Publicité numérique", "الإعلان الرقمي", "การโฆษณาดิจิทัล", "Quảng cáo số", "Iklan digital", "Цифровая реклама"),
    "seo-sem": ("Référencement (SEO/SEA)", "تحسين محركات البحث (SEO/SEM)", "การปรับแต่งการค้นหา (SEO/SEM)", "Tối ưu tìm kiếm (SEO/SEM)", "Optimasi pencarian (SEO/SEM)", "Поисковая оптимизация (SEO/SEM)"),
    "social-media": ("Marketing sur les réseaux sociaux", "التسويق عبر وسائل التواصل الاجتماعي", "การตลาดบนโซเชียลมีเดีย", "Tiếp thị mạng xã hội", "Pemasaran media sosial", "Маркетинг в социальных сетях"),
    "spreadsheet-analysis": ("Analyse de données sur tableur", "تحليل البيانات بالجداول الإلكترونية", "การวิเคราะห์ข้อมูลด้วยสเปรดชีต", "Phân tích dữ liệu bằng bảng tính", "Analisis data dengan spreadsheet", "Анализ данных в электронных таблицах"),
    "ecom-analytics": ("Analyse de données e-commerce", "تحليل بيانات التجارة الإلكترونية", "การวิเคราะห์ข้อมูลอีคอมเมิร์ซ", "Phân tích dữ liệu thương mại điện tử", "Analitik data e-commerce", "Аналитика электронной торговли"),
    "customer-service": ("Service client international", "خدمة العملاء عبر الحدود", "การบริการลูกค้าข้ามพรมแดน", "Chăm sóc khách hàng xuyên biên giới", "Layanan pelanggan lintas negara", "Обслуживание иностранных клиентов"),
    "supply-chain": ("Bases de la chaîne logistique", "أساسيات سلسلة الإمداد", "พื้นฐานห่วงโซ่อุปทาน", "Cơ bản về chuỗi cung ứng", "Dasar-dasar rantai pasok", "Основы цепей поставок"),
    "cross-border-logistics": ("Logistique internationale", "الخدمات اللوجستية عبر الحدود", "โลจิสติกส์ข้ามพรมแดน", "Logistics xuyên biên giới", "Logistik lintas negara", "Международная логистика"),
    "inventory": ("Gestion des stocks", "إدارة المخزون", "การจัดการสินค้าคงคลัง", "Quản lý tồn kho", "Manajemen persediaan", "Управление запасами"),
    "trade-documents": ("Documents du commerce extérieur", "مستندات التجارة الخارجية", "เอกสารการค้าระหว่างประเทศ", "Chứng từ ngoại thương", "Dokumen perdagangan luar negeri", "Внешнеторговые документы"),
    "customs": ("Douane et conformité", "الجمارك والامتثال", "ศุลกากรและการปฏิบัติตามกฎระเบียบ", "Hải quan và tuân thủ", "Kepabeanan dan kepatuhan", "Таможня и соответствие требованиям"),
    "payments-fx": ("Paiements internationaux et change", "المدفوعات عبر الحدود والصرف", "การชำระเงินข้ามพรมแดนและอัตราแลกเปลี่ยน", "Thanh toán quốc tế và ngoại hối", "Pembayaran lintas negara dan valas", "Международные платежи и валюта"),
    "pv-basics": ("Bases du photovoltaïque", "أساسيات الطاقة الكهروضوئية", "พื้นฐานเซลล์แสงอาทิตย์", "Cơ bản về quang điện", "Dasar-dasar fotovoltaik", "Основы фотовольтаики"),
    "pv-installation": ("Installation photovoltaïque", "تركيب الأنظمة الكهروضوئية", "การติดตั้งระบบโซลาร์", "Lắp đặt điện mặt trời", "Instalasi PV", "Монтаж солнечных электростанций"),
    "pv-design": ("Conception de systèmes photovoltaïques", "تصميم الأنظمة الكهروضوئية", "การออกแบบระบบโซลาร์", "Thiết kế hệ thống điện mặt trời", "Desain sistem PV", "Проектирование солнечных систем"),
    "battery-basics": ("Bases des batteries", "أساسيات البطاريات", "พื้นฐานแบตเตอรี่", "Cơ bản về pin", "Dasar-dasar baterai", "Основы аккумуляторов"),
    "hv-safety": ("Sécurité haute tension des véhicules électriques", "سلامة الجهد العالي في السيارات الكهربائية", "ความปลอดภัยไฟฟ้าแรงสูงในรถยนต์ไฟฟ้า", "An toàn điện cao áp xe điện", "Keselamatan tegangan tinggi kendaraan listrik", "Высоковольтная безопасность электромобилей"),
    "ev-battery": ("Maintenance des batteries de véhicules électriques", "صيانة بطاريات السيارات الكهربائية", "การบำรุงรักษาแบตเตอรี่รถยนต์ไฟฟ้า", "Bảo dưỡng pin xe điện", "Perawatan baterai kendaraan listrik", "Обслуживание батарей электромобилей"),
    "energy-storage": ("Systèmes de stockage d'énergie", "أنظمة تخزين الطاقة", "ระบบกักเก็บพลังงาน", "Hệ thống lưu trữ năng lượng", "Sistem penyimpanan energi", "Системы накопления энергии"),
    "cross-cultural": ("Communication interculturelle", "التواصل بين الثقافات", "การสื่อสารข้ามวัฒนธรรม", "Giao tiếp liên văn hóa", "Komunikasi lintas budaya", "Межкультурная коммуникация"),
    "workplace-etiquette": ("Usages du monde du travail en Chine", "آداب العمل في الصين", "มารยาทในที่ทำงานแบบจีน", "Nghi thức nơi làm việc Trung Quốc", "Etika kerja di Tiongkok", "Деловой этикет в Китае"),
    "teamwork": ("Travail d'équipe et professionnalisme", "العمل الجماعي والاحترافية", "การทำงานเป็นทีมและความเป็นมืออาชีพ", "Làm việc nhóm và tác phong chuyên nghiệp", "Kerja sama tim dan profesionalisme", "Командная работа и профессионализм"),
    "labour-law": ("Droit du travail et sécurité au travail", "قانون العمل والسلامة المهنية", "กฎหมายแรงงานและความปลอดภัยในการทำงาน", "Luật lao động và an toàn lao động", "Hukum ketenagakerjaan dan K3", "Трудовое право и охрана труда"),
}  # fmt: skip

# role_id: names in LANGUAGES order
ROLE_NAMES: dict[str, tuple[str, str, str, str, str, str]] = {
    "cnc-machine-operator": ("Opérateur sur machines CNC", "مشغّل آلات CNC", "ผู้ควบคุมเครื่อง CNC", "Thợ vận hành máy CNC", "Operator mesin CNC", "Оператор станков с ЧПУ"),
    "mechanical-engineer": ("Ingénieur mécanique", "مهندس ميكانيكي", "วิศวกรเครื่องกล", "Kỹ sư cơ khí", "Insinyur mesin", "Инженер-механик"),
    "welding-robot-inspector": ("Contrôleur de robots de soudage", "مفتش روبوتات اللحام", "ผู้ตรวจสอบหุ่นยนต์เชื่อม", "Kiểm tra viên robot hàn", "Inspektur robot las", "Контролёр сварочных роботов"),
    "quality-inspector": ("Contrôleur qualité", "مفتش جودة", "ผู้ตรวจสอบคุณภาพ", "Nhân viên kiểm tra chất lượng", "Inspektur mutu", "Контролёр качества"),
    "electrical-automation-technician": ("Technicien en automatismes électriques", "فني أتمتة كهربائية", "ช่างเทคนิคระบบอัตโนมัติทางไฟฟ้า", "Kỹ thuật viên tự động hóa điện", "Teknisi otomasi listrik", "Техник по электроавтоматике"),
    "industrial-robot-technician": ("Technicien en robotique industrielle", "فني روبوتات صناعية", "ช่างเทคนิคหุ่นยนต์อุตสาหกรรม", "Kỹ thuật viên robot công nghiệp", "Teknisi robot industri", "Техник по промышленным роботам"),
    "ecommerce-operations-manager": ("Responsable des opérations e-commerce", "مدير عمليات التجارة الإلكترونية", "ผู้จัดการฝ่ายปฏิบัติการอีคอมเมิร์ซ", "Quản lý vận hành thương mại điện tử", "Manajer operasional e-commerce", "Менеджер по электронной торговле"),
    "cross-border-marketing-specialist": ("Spécialiste du marketing international", "أخصائي تسويق عبر الحدود", "ผู้เชี่ยวชาญการตลาดข้ามพรมแดน", "Chuyên viên tiếp thị xuyên biên giới", "Spesialis pemasaran lintas negara", "Специалист по международному маркетингу"),
    "ecommerce-data-analyst": ("Analyste de données e-commerce", "محلل بيانات التجارة الإلكترونية", "นักวิเคราะห์ข้อมูลอีคอมเมิร์ซ", "Chuyên viên phân tích dữ liệu thương mại điện tử", "Analis data e-commerce", "Аналитик данных электронной торговли"),
    "supply-chain-coordinator": ("Coordinateur de la chaîne logistique", "منسق سلسلة الإمداد", "ผู้ประสานงานห่วงโซ่อุปทาน", "Điều phối viên chuỗi cung ứng", "Koordinator rantai pasok", "Координатор цепи поставок"),
    "live-stream-host": ("Animateur de vente en direct international", "مقدّم بث مباشر للبيع عبر الحدود", "พิธีกรไลฟ์สดขายสินค้าข้ามพรมแดน", "Người dẫn livestream bán hàng xuyên biên giới", "Pembawa acara siaran langsung lintas negara", "Ведущий международных прямых продаж"),
    "pv-installation-technician": ("Technicien en installation photovoltaïque", "فني تركيب أنظمة كهروضوئية", "ช่างติดตั้งระบบโซลาร์", "Kỹ thuật viên lắp đặt điện mặt trời", "Teknisi instalasi PV", "Техник по монтажу солнечных станций"),
    "ev-battery-technician": ("Technicien de maintenance de batteries de véhicules électriques", "فني صيانة بطاريات السيارات الكهربائية", "ช่างซ่อมบำรุงแบตเตอรี่รถยนต์ไฟฟ้า", "Kỹ thuật viên bảo dưỡng pin xe điện", "Teknisi perawatan baterai kendaraan listrik", "Техник по обслуживанию батарей электромобилей"),
}  # fmt: skip

# the three kinds of module, by title suffix: foundations (101), applied practice (201), advanced
# workshop in Chinese (301); {name} is the skill's name in the language
TITLE_FORMATS: dict[str, tuple[str, str, str]] = {
    "fr": ("{name} : bases", "{name} : pratique appliquée", "{name} : atelier avancé (en chinois)"),
    "ar": ("{name}: الأساسيات", "{name}: تطبيق عملي", "{name}: ورشة متقدمة (بالصينية)"),
    "th": ("{name}: พื้นฐาน", "{name}: ฝึกปฏิบัติ", "{name}: เวิร์กช็อปขั้นสูง (ภาษาจีน)"),
    "vi": ("{name}: cơ bản", "{name}: thực hành ứng dụng", "{name}: xưởng nâng cao (bằng tiếng Trung)"),
    "id": ("{name}: dasar", "{name}: praktik terapan", "{name}: lokakarya lanjutan (dalam bahasa Tionghoa)"),
    "ru": ("{name}: основы", "{name}: практика", "{name}: продвинутый практикум (на китайском)"),
}


def skill_names(skill_id: str) -> dict[str, str]:
    return dict(zip(LANGUAGES, SKILL_NAMES[skill_id], strict=True))


def role_names(role_id: str) -> dict[str, str]:
    return dict(zip(LANGUAGES, ROLE_NAMES[role_id], strict=True))


def module_titles(skill_id: str, kind: int) -> dict[str, str]:
    """Titles of the skill's module of `kind` (0: foundations, 1: applied practice, 2: advanced)."""
    return {lang: TITLE_FORMATS[lang][kind].format(name=name) for lang, name in skill_names(skill_id).items()}
