"""Builds recommender/data/demo_catalog.json, the demo world's catalog.

Run: .venv/bin/python tools/build_demo_catalog.py
The tracks, skills and roles follow the vocational programs Luban workshops teach abroad and the
scarce roles of China's manufacturing and cross-border e-commerce talent-shortage catalogs.
E-commerce role weights follow the enterprise-survey ranking cited in issue 2 (marketing 55.8 %,
data analysis 47 %, supply chain 26.5 %, live-stream hosting 7 %).
"""

from __future__ import annotations

import json
from pathlib import Path

from demo_catalog_names import module_titles, role_names, skill_names

# skill_id: (English name, Chinese name, domain)
SKILLS: dict[str, tuple[str, str, str]] = {
    # Chinese for vocational purposes
    "zh-pinyin": ("Pinyin and tones", "拼音与声调", "chinese"),
    "zh-hsk1": ("Chinese HSK 1", "汉语水平一级", "chinese"),
    "zh-hsk2": ("Chinese HSK 2", "汉语水平二级", "chinese"),
    "zh-hsk3": ("Chinese HSK 3", "汉语水平三级", "chinese"),
    "zh-hsk4": ("Chinese HSK 4", "汉语水平四级", "chinese"),
    "zh-hanzi-reading": ("Reading Chinese characters", "汉字阅读", "chinese"),
    "zh-workplace": ("Workplace Chinese communication", "职场汉语交际", "chinese"),
    "zh-tech-manufacturing": ("Technical Chinese for manufacturing", "制造业专业汉语", "chinese"),
    "zh-tech-electrical": ("Technical Chinese for electrical work", "电气专业汉语", "chinese"),
    "zh-business-ecommerce": ("Business Chinese for e-commerce", "电商商务汉语", "chinese"),
    "zh-customer-service": ("Chinese for customer service", "客服汉语", "chinese"),
    # hardware manufacturing
    "workshop-safety": ("Workshop safety", "车间安全", "manufacturing"),
    "lean-5s": ("Lean production and 5S", "精益生产与5S", "manufacturing"),
    "mech-drawing": ("Reading mechanical drawings", "机械识图", "manufacturing"),
    "cad-2d": ("2D CAD drafting", "二维CAD制图", "manufacturing"),
    "cad-3d": ("3D CAD modelling", "三维CAD建模", "manufacturing"),
    "metrology": ("Measurement and metrology", "测量与计量", "manufacturing"),
    "gdt": ("Geometric dimensioning and tolerancing", "几何公差", "manufacturing"),
    "materials": ("Engineering materials", "工程材料", "manufacturing"),
    "machining-basics": ("Machining fundamentals", "机械加工基础", "manufacturing"),
    "cnc-operation": ("CNC machine operation", "数控机床操作", "manufacturing"),
    "cnc-gcode": ("CNC G-code programming", "数控G代码编程", "manufacturing"),
    "cnc-cam": ("CAM programming", "CAM自动编程", "manufacturing"),
    "cnc-setup": ("CNC setup and fixturing", "数控装夹与对刀", "manufacturing"),
    "cnc-maintenance": ("CNC machine maintenance", "数控机床维护", "manufacturing"),
    "welding-safety": ("Welding safety", "焊接安全", "manufacturing"),
    "welding-mig": ("MIG/MAG welding", "熔化极气体保护焊", "manufacturing"),
    "welding-tig": ("TIG welding", "钨极氩弧焊", "manufacturing"),
    "welding-robot": ("Welding-robot programming", "焊接机器人编程", "manufacturing"),
    "weld-inspection": ("Weld inspection and NDT", "焊缝检测与无损检测", "manufacturing"),
    "quality-inspection": ("Quality inspection", "质量检验", "manufacturing"),
    "spc": ("Statistical process control", "统计过程控制", "manufacturing"),
    "tooling": ("Tooling and fixture design", "工装夹具设计", "manufacturing"),
    # electrical automation
    "electrical-safety": ("Electrical safety", "电气安全", "automation"),
    "circuits": ("Circuit fundamentals", "电路基础", "automation"),
    "wiring": ("Electrical wiring and panels", "电气接线与配电柜", "automation"),
    "motor-control": ("Motor control", "电机控制", "automation"),
    "plc-ladder": ("PLC ladder logic", "PLC梯形图编程", "automation"),
    "plc-advanced": ("Advanced PLC programming", "PLC高级编程", "automation"),
    "hmi-scada": ("HMI and SCADA", "人机界面与组态", "automation"),
    "sensors": ("Sensors and actuators", "传感器与执行器", "automation"),
    "industrial-networks": ("Industrial networks", "工业网络", "automation"),
    "pid-control": ("Control systems and PID", "控制系统与PID", "automation"),
    "robot-operation": ("Industrial robot operation", "工业机器人操作", "automation"),
    "troubleshooting": ("Electrical troubleshooting", "电气故障诊断", "automation"),
    # cross-border e-commerce
    "ecom-platforms": ("Marketplace platform operations", "跨境平台运营", "ecommerce"),
    "product-listing": ("Product listing optimisation", "产品刊登优化", "ecommerce"),
    "marketplace-amazon": ("Amazon-style marketplace operations", "亚马逊类平台运营", "ecommerce"),
    "marketplace-tiktok": ("TikTok-style social commerce", "短视频社交电商", "ecommerce"),
    "live-streaming": ("Live-stream selling", "直播带货", "ecommerce"),
    "content-marketing": ("Content marketing", "内容营销", "ecommerce"),
    "multilingual-marketing": ("Multilingual marketing copy", "多语种营销文案", "ecommerce"),
    "digital-ads": ("Digital advertising", "数字广告投放", "ecommerce"),
    "seo-sem": ("Search optimisation (SEO/SEM)", "搜索引擎优化与营销", "ecommerce"),
    "social-media": ("Social-media marketing", "社交媒体营销", "ecommerce"),
    "spreadsheet-analysis": ("Spreadsheet data analysis", "电子表格数据分析", "ecommerce"),
    "ecom-analytics": ("E-commerce data analytics", "电商数据分析", "ecommerce"),
    "customer-service": ("Cross-border customer service", "跨境客户服务", "ecommerce"),
    "supply-chain": ("Supply-chain basics", "供应链基础", "ecommerce"),
    "cross-border-logistics": ("Cross-border logistics", "跨境物流", "ecommerce"),
    "inventory": ("Inventory management", "库存管理", "ecommerce"),
    "trade-documents": ("Foreign-trade documentation", "外贸单证", "ecommerce"),
    "customs": ("Customs and compliance", "报关与合规", "ecommerce"),
    "payments-fx": ("Cross-border payments and FX", "跨境支付与结汇", "ecommerce"),
    # new energy
    "pv-basics": ("Photovoltaic fundamentals", "光伏基础", "energy"),
    "pv-installation": ("PV installation", "光伏安装", "energy"),
    "pv-design": ("PV system design", "光伏系统设计", "energy"),
    "battery-basics": ("Battery fundamentals", "电池基础", "energy"),
    "hv-safety": ("EV high-voltage safety", "新能源汽车高压安全", "energy"),
    "ev-battery": ("EV battery maintenance", "动力电池维护", "energy"),
    "energy-storage": ("Energy storage systems", "储能系统", "energy"),
    # cross-cultural workplace literacy
    "cross-cultural": ("Cross-cultural communication", "跨文化沟通", "culture"),
    "workplace-etiquette": ("Chinese workplace etiquette", "中国职场礼仪", "culture"),
    "teamwork": ("Teamwork and professionalism", "团队合作与职业素养", "culture"),
    "labour-law": ("Labour law and occupational safety", "劳动法与职业安全", "culture"),
}

# Skill-level prerequisites: the intro module of a skill requires the intro modules of these.
SKILL_PREREQS: dict[str, list[str]] = {
    "zh-hsk1": ["zh-pinyin"],
    "zh-hsk2": ["zh-hsk1"],
    "zh-hsk3": ["zh-hsk2", "zh-hanzi-reading"],
    "zh-hsk4": ["zh-hsk3"],
    "zh-hanzi-reading": ["zh-hsk1"],
    "zh-workplace": ["zh-hsk2"],
    "zh-tech-manufacturing": ["zh-workplace"],
    "zh-tech-electrical": ["zh-workplace"],
    "zh-business-ecommerce": ["zh-workplace"],
    "zh-customer-service": ["zh-workplace"],
    "lean-5s": ["workshop-safety"],
    "cad-2d": ["mech-drawing"],
    "cad-3d": ["cad-2d"],
    "gdt": ["mech-drawing", "metrology"],
    "machining-basics": ["workshop-safety", "mech-drawing", "materials"],
    "cnc-operation": ["machining-basics"],
    "cnc-gcode": ["cnc-operation"],
    "cnc-cam": ["cnc-gcode", "cad-3d"],
    "cnc-setup": ["cnc-operation", "metrology"],
    "cnc-maintenance": ["cnc-operation", "circuits"],
    "welding-mig": ["welding-safety", "materials"],
    "welding-tig": ["welding-mig"],
    "welding-robot": ["welding-mig", "robot-operation"],
    "weld-inspection": ["welding-mig", "quality-inspection"],
    "quality-inspection": ["metrology", "mech-drawing"],
    "spc": ["quality-inspection", "spreadsheet-analysis"],
    "tooling": ["cad-3d", "machining-basics"],
    "circuits": ["electrical-safety"],
    "wiring": ["circuits"],
    "motor-control": ["wiring"],
    "plc-ladder": ["circuits"],
    "plc-advanced": ["plc-ladder"],
    "hmi-scada": ["plc-ladder"],
    "sensors": ["circuits"],
    "industrial-networks": ["plc-ladder"],
    "pid-control": ["sensors", "plc-ladder"],
    "robot-operation": ["electrical-safety", "sensors"],
    "troubleshooting": ["motor-control", "plc-ladder"],
    "product-listing": ["ecom-platforms"],
    "marketplace-amazon": ["product-listing"],
    "marketplace-tiktok": ["product-listing", "social-media"],
    "live-streaming": ["marketplace-tiktok"],
    "content-marketing": ["ecom-platforms"],
    "multilingual-marketing": ["content-marketing"],
    "digital-ads": ["content-marketing"],
    "seo-sem": ["product-listing"],
    "social-media": ["content-marketing"],
    "ecom-analytics": ["spreadsheet-analysis", "ecom-platforms"],
    "customer-service": ["ecom-platforms"],
    "cross-border-logistics": ["supply-chain"],
    "inventory": ["supply-chain", "spreadsheet-analysis"],
    "trade-documents": ["supply-chain"],
    "customs": ["trade-documents"],
    "payments-fx": ["ecom-platforms"],
    "pv-installation": ["pv-basics", "electrical-safety"],
    "pv-design": ["pv-installation", "circuits"],
    "battery-basics": ["circuits"],
    "hv-safety": ["electrical-safety"],
    "ev-battery": ["battery-basics", "hv-safety"],
    "energy-storage": ["battery-basics", "pv-basics"],
    "workplace-etiquette": ["cross-cultural"],
}

# Which skills get an applied (201) and an advanced, Chinese-taught (301) module.
ADVANCED = {
    "cnc-gcode",
    "cnc-cam",
    "cnc-operation",
    "welding-robot",
    "weld-inspection",
    "quality-inspection",
    "plc-advanced",
    "plc-ladder",
    "ecom-analytics",
    "multilingual-marketing",
    "digital-ads",
    "marketplace-amazon",
    "supply-chain",
    "pv-installation",
    "ev-battery",
    "cad-3d",
    "motor-control",
}
LOCAL_LANGUAGES = ["fr", "ar", "th", "vi", "id", "ru"]
TRACK_OF_DOMAIN = {
    "chinese": "chinese",
    "manufacturing": "manufacturing",
    "automation": "automation",
    "ecommerce": "ecommerce",
    "energy": "new-energy",
    "culture": "cross-cultural",
}
BASE_DIFFICULTY = {
    "chinese": 0.3,
    "manufacturing": 0.45,
    "automation": 0.5,
    "ecommerce": 0.4,
    "energy": 0.5,
    "culture": 0.2,
}
CHINESE_LEVEL_OF = {
    "zh-pinyin": 0,
    "zh-hsk1": 0,
    "zh-hsk2": 1,
    "zh-hsk3": 2,
    "zh-hsk4": 3,
    "zh-hanzi-reading": 1,
    "zh-workplace": 2,
    "zh-tech-manufacturing": 2,
    "zh-tech-electrical": 2,
    "zh-business-ecommerce": 2,
    "zh-customer-service": 2,
}
# The Chinese ladder: the HSK level a learner who masters each skill's foundations module has reached.
RAISES_CHINESE_LEVEL = {"zh-hsk1": 1, "zh-hsk2": 2, "zh-hsk3": 3, "zh-hsk4": 4}
# A technical module taught in Chinese among other languages needs this HSK level in Chinese (its
# Chinese-only advanced workshop too): the Chinese of the trade is learnt on the ladder first.
TECHNICAL_CHINESE_LEVEL = 3
ZH_SUPPORT = {
    "manufacturing": "zh-tech-manufacturing",
    "automation": "zh-tech-electrical",
    "energy": "zh-tech-electrical",
    "ecommerce": "zh-business-ecommerce",
}

# role_id: (en, zh, industry, shortage_index, [(skill, level, weight)])
ROLES: dict[str, tuple[str, str, str, float, list[tuple[str, float, float]]]] = {
    "cnc-machine-operator": (
        "CNC machine operator",
        "数控机床操作工",
        "manufacturing",
        0.9,
        [
            ("workshop-safety", 0.8, 0.6),
            ("mech-drawing", 0.75, 0.8),
            ("metrology", 0.7, 0.6),
            ("cnc-operation", 0.85, 1.0),
            ("cnc-gcode", 0.7, 0.8),
            ("cnc-setup", 0.75, 0.7),
            ("zh-workplace", 0.5, 0.3),
        ],
    ),
    "mechanical-engineer": (
        "Mechanical engineer",
        "机械工程师",
        "manufacturing",
        0.8,
        [
            ("mech-drawing", 0.85, 0.8),
            ("cad-3d", 0.8, 1.0),
            ("gdt", 0.75, 0.7),
            ("materials", 0.75, 0.6),
            ("tooling", 0.7, 0.7),
            ("cnc-cam", 0.6, 0.5),
            ("zh-tech-manufacturing", 0.6, 0.4),
        ],
    ),
    "welding-robot-inspector": (
        "Welding-robot inspector",
        "焊接机器人检测员",
        "manufacturing",
        0.85,
        [
            ("welding-safety", 0.85, 0.7),
            ("welding-mig", 0.7, 0.6),
            ("welding-robot", 0.75, 1.0),
            ("weld-inspection", 0.8, 1.0),
            ("quality-inspection", 0.7, 0.6),
            ("robot-operation", 0.65, 0.5),
        ],
    ),
    "quality-inspector": (
        "Quality inspector",
        "质检员",
        "manufacturing",
        0.7,
        [
            ("metrology", 0.8, 1.0),
            ("mech-drawing", 0.75, 0.7),
            ("quality-inspection", 0.85, 1.0),
            ("spc", 0.7, 0.7),
            ("gdt", 0.6, 0.5),
            ("lean-5s", 0.6, 0.4),
        ],
    ),
    "electrical-automation-technician": (
        "Electrical automation technician",
        "电气自动化技术员",
        "automation",
        0.9,
        [
            ("electrical-safety", 0.85, 0.8),
            ("wiring", 0.75, 0.7),
            ("motor-control", 0.7, 0.7),
            ("plc-ladder", 0.8, 1.0),
            ("hmi-scada", 0.65, 0.5),
            ("sensors", 0.7, 0.6),
            ("troubleshooting", 0.7, 0.8),
            ("zh-tech-electrical", 0.5, 0.3),
        ],
    ),
    "industrial-robot-technician": (
        "Industrial robot technician",
        "工业机器人运维员",
        "automation",
        0.85,
        [
            ("electrical-safety", 0.8, 0.6),
            ("robot-operation", 0.85, 1.0),
            ("plc-ladder", 0.7, 0.7),
            ("sensors", 0.7, 0.6),
            ("industrial-networks", 0.6, 0.5),
            ("troubleshooting", 0.7, 0.7),
        ],
    ),
    "ecommerce-operations-manager": (
        "E-commerce operations manager",
        "电商运营经理",
        "ecommerce",
        0.8,
        [
            ("ecom-platforms", 0.85, 0.6),
            ("content-marketing", 0.75, 0.558),
            ("digital-ads", 0.7, 0.558),
            ("ecom-analytics", 0.75, 0.47),
            ("inventory", 0.6, 0.265),
            ("supply-chain", 0.6, 0.265),
            ("live-streaming", 0.5, 0.07),
            ("zh-business-ecommerce", 0.5, 0.2),
        ],
    ),
    "cross-border-marketing-specialist": (
        "Cross-border marketing specialist",
        "跨境营销专员",
        "ecommerce",
        0.85,
        [
            ("content-marketing", 0.85, 0.558),
            ("multilingual-marketing", 0.85, 0.558),
            ("social-media", 0.75, 0.558),
            ("seo-sem", 0.7, 0.558),
            ("ecom-analytics", 0.6, 0.47),
            ("cross-cultural", 0.7, 0.3),
            ("live-streaming", 0.5, 0.07),
        ],
    ),
    "ecommerce-data-analyst": (
        "E-commerce data analyst",
        "电商数据分析师",
        "ecommerce",
        0.8,
        [
            ("spreadsheet-analysis", 0.85, 0.47),
            ("ecom-analytics", 0.85, 0.47),
            ("digital-ads", 0.6, 0.3),
            ("ecom-platforms", 0.7, 0.3),
            ("inventory", 0.5, 0.2),
        ],
    ),
    "supply-chain-coordinator": (
        "Supply-chain coordinator",
        "供应链专员",
        "ecommerce",
        0.75,
        [
            ("supply-chain", 0.85, 0.265),
            ("cross-border-logistics", 0.8, 0.265),
            ("inventory", 0.75, 0.265),
            ("trade-documents", 0.75, 0.265),
            ("customs", 0.7, 0.2),
            ("spreadsheet-analysis", 0.6, 0.2),
        ],
    ),
    "live-stream-host": (
        "Cross-border live-stream host",
        "跨境直播主播",
        "ecommerce",
        0.5,
        [
            ("live-streaming", 0.85, 0.07),
            ("marketplace-tiktok", 0.75, 0.07),
            ("zh-customer-service", 0.5, 0.05),
            ("customer-service", 0.7, 0.05),
            ("cross-cultural", 0.6, 0.05),
        ],
    ),
    "pv-installation-technician": (
        "PV installation technician",
        "光伏安装技术员",
        "new-energy",
        0.8,
        [
            ("electrical-safety", 0.85, 0.8),
            ("pv-basics", 0.8, 0.7),
            ("pv-installation", 0.85, 1.0),
            ("pv-design", 0.6, 0.5),
            ("wiring", 0.7, 0.6),
            ("energy-storage", 0.5, 0.3),
        ],
    ),
    "ev-battery-technician": (
        "EV battery maintenance technician",
        "新能源汽车电池维修工",
        "new-energy",
        0.9,
        [
            ("hv-safety", 0.9, 1.0),
            ("battery-basics", 0.8, 0.7),
            ("ev-battery", 0.85, 1.0),
            ("circuits", 0.7, 0.6),
            ("troubleshooting", 0.6, 0.5),
        ],
    ),
}


def _min_chinese_level(sid: str, domain: str) -> int:
    """The HSK level a module of the skill needs when taken in Chinese."""
    if domain == "chinese":
        return CHINESE_LEVEL_OF[sid]
    return 0 if domain == "culture" else TECHNICAL_CHINESE_LEVEL


def build() -> dict[str, object]:
    skills = [
        {"skill_id": sid, "names": {"en": en, "zh": zh, **skill_names(sid)}, "domain": domain}
        for sid, (en, zh, domain) in SKILLS.items()
    ]
    modules: list[dict[str, object]] = []
    skill_list = list(SKILLS)
    for i, (sid, (en, zh, domain)) in enumerate(SKILLS.items()):
        base = BASE_DIFFICULTY[domain] + 0.05 * len(SKILL_PREREQS.get(sid, []))
        track = TRACK_OF_DOMAIN[domain]
        if domain == "chinese":
            # beginners' Chinese is taught through the learners' own languages; from HSK 2 on, in Chinese
            languages = ["zh"] if CHINESE_LEVEL_OF[sid] >= 2 else ["zh", "en", *LOCAL_LANGUAGES]
        else:
            languages = ["en", "zh", LOCAL_LANGUAGES[i % 6], LOCAL_LANGUAGES[(i + 2) % 6]]
        intro = {
            "module_id": f"{sid}-101",
            "titles": {"en": f"{en}: foundations", "zh": f"{zh}：基础", **module_titles(sid, 0)},
            "skills": [{"skill_id": sid, "weight": 1.0}],
            "prerequisite_module_ids": [f"{p}-101" for p in SKILL_PREREQS.get(sid, [])],
            "languages": languages,
            "track": track,
            "difficulty": round(min(base, 0.9), 2),
            "estimated_minutes": 90 if domain in ("chinese", "culture") else 120,
            "min_chinese_level": _min_chinese_level(sid, domain),
            "raises_chinese_level": RAISES_CHINESE_LEVEL.get(sid, 0),
        }
        modules.append(intro)
        applied_skills: list[dict[str, object]] = [{"skill_id": sid, "weight": 1.0}]
        if domain in ZH_SUPPORT:
            applied_skills.append({"skill_id": ZH_SUPPORT[domain], "weight": 0.2})
        elif domain == "chinese" and sid != "zh-pinyin":
            applied_skills.append({"skill_id": "zh-hanzi-reading", "weight": 0.3})
        prereq_applied = [f"{sid}-101"] + [
            f"{p}-201" for p in SKILL_PREREQS.get(sid, [])[:1] if p in SKILLS and domain != "chinese"
        ]
        modules.append(
            {
                "module_id": f"{sid}-201",
                "titles": {"en": f"{en}: applied practice", "zh": f"{zh}：实训", **module_titles(sid, 1)},
                "skills": applied_skills if sid != "zh-hanzi-reading" else applied_skills[:1],
                "prerequisite_module_ids": prereq_applied,
                "languages": languages if domain != "chinese" else ["zh"],
                "track": track,
                "difficulty": round(min(base + 0.2, 0.95), 2),
                "estimated_minutes": 180,
                "min_chinese_level": max(_min_chinese_level(sid, domain), 2 if domain == "chinese" else 0),
                "raises_chinese_level": 0,
            }
        )
        if sid in ADVANCED:
            modules.append(
                {
                    "module_id": f"{sid}-301",
                    "titles": {
                        "en": f"{en}: advanced workshop (in Chinese)",
                        "zh": f"{zh}：高级工坊",
                        **module_titles(sid, 2),
                    },
                    "skills": [{"skill_id": sid, "weight": 1.0}]
                    + ([{"skill_id": ZH_SUPPORT[domain], "weight": 0.3}] if domain in ZH_SUPPORT else []),
                    "prerequisite_module_ids": [f"{sid}-201"],
                    "languages": ["zh"],
                    "track": track,
                    "difficulty": round(min(base + 0.35, 0.98), 2),
                    "estimated_minutes": 240,
                    "min_chinese_level": TECHNICAL_CHINESE_LEVEL,
                    "raises_chinese_level": 0,
                }
            )
    # Applied modules of skills whose prerequisite has no 201 drop that reference.
    ids = {m["module_id"] for m in modules}
    for m in modules:
        m["prerequisite_module_ids"] = [p for p in m["prerequisite_module_ids"] if p in ids]  # type: ignore[attr-defined]
    roles = [
        {
            "role_id": rid,
            "names": {"en": en, "zh": zh, **role_names(rid)},
            "industry": industry,
            "requirements": [{"skill_id": s, "level": lv, "weight": w} for s, lv, w in reqs],
            "shortage_index": shortage,
        }
        for rid, (en, zh, industry, shortage, reqs) in ROLES.items()
    ]
    assert len(skill_list) >= 60 and len(modules) >= 120 and len(roles) >= 10, (
        len(skill_list),
        len(modules),
        len(roles),
    )
    return {
        "source": "Luban Path demo world; built by tools/build_demo_catalog.py",
        "skills": skills,
        "modules": modules,
        "roles": roles,
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "recommender" / "data" / "demo_catalog.json"
    catalog = build()
    out.write_text(json.dumps(catalog, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    counts = {k: len(v) for k, v in catalog.items() if isinstance(v, list)}
    print(f"wrote {out}: {counts}")
