"""The dashboard's web application (Starlette, Jinja2 templates): routes, sign-in and the checks
every request passes. Thin, as the gRPC API is: read the request, call a use case
(service.insights, the model registry), render.

Authentication follows the gRPC API's: with LUBAN_AUTH_TOKENS_FILE set, a person signs in with
their token on a form (the signed session cookie then keeps its SHA-256 hash, never the token) and
a script sends `Authorization: Bearer TOKEN`; every page shows only the token's tenant. Learner
pages need the platform or admin role, the models page the ml role. Without a token file
everything is the default tenant's, and every page says so. Forms that change something carry a
per-session CSRF token; a request authenticated by its bearer header needs none (it sends no
cookie a third-party page could ride on).
"""

from __future__ import annotations

import csv
import functools
import hmac
import io
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from recommender.config import Settings
from recommender.dashboard import charts
from recommender.dashboard.i18n import (
    INTERFACE_LOCALES,
    direction,
    language_name,
    locale_name,
    negotiate,
    translations,
)
from recommender.errors import InvalidInput, LubanError, NotFound, PreconditionFailed, StoreUnavailable
from recommender.ml.train import PASS_SCORE, TrainConfig
from recommender.service.app import App
from recommender.service.auth import ROLES, Principal, TokenBook
from recommender.service.insights import DEFAULT_STALLED_DAYS, READINESS_BINS, Insights
from recommender.storage.store import DEFAULT_TENANT

HERE = Path(__file__).resolve().parent
LEARNER_ROLES = frozenset({"platform", "admin"})
MODEL_ROLES = frozenset({"ml"})
OPEN = Principal(DEFAULT_TENANT, ROLES)  # authentication off: the default tenant, every role
MAX_STALLED_DAYS = 3650
STALLED_SHOWN = 50


@dataclass(frozen=True)
class Dashboard:
    """What the routes share: the services, the token book (None: authentication off)."""

    app: App
    insights: Insights
    tokens: TokenBook | None
    templates: Jinja2Templates


def session_secret(settings: Settings) -> str:
    """LUBAN_DASHBOARD_SESSION_SECRET, else a secret drawn for this process: its sessions end when
    it stops, and several dashboard processes behind one address need the setting."""
    if settings.dashboard_session_secret is not None:
        return settings.dashboard_session_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def create_dashboard(
    app: App, *, secret: str | None = None, tokens: TokenBook | None = None, warm: bool = False
) -> Starlette:
    """The dashboard over `app`; `warm`: plan every tenant's learners at once, in the background,
    so the first visitor need not wait for it."""
    settings = app.settings
    if tokens is None and settings.auth_tokens_file is not None:
        tokens = TokenBook.load(settings.auth_tokens_file)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        format_percent=format_percent, format_decimal=format_decimal, isnan=math.isnan, heat=charts.heat,
        urlencode=urlencode, quote=quote, language_name=language_name,
    )  # fmt: skip
    state = Dashboard(app, Insights(app, settings.dashboard_refresh_seconds), tokens, templates)
    if warm:
        state.insights.warm(tokens.tenants() if tokens is not None else [DEFAULT_TENANT])

    def view(
        handler: Callable[[Request, Dashboard, Principal, FormData | None], Response], roles: frozenset[str]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            principal = _principal(request, state)
            if principal is None:
                if request.headers.get("authorization"):
                    return PlainTextResponse("invalid bearer token", 401, {"WWW-Authenticate": "Bearer"})
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/signin?{urlencode({'next': target})}", 303)
            if not principal.roles & roles:
                return _page(request, state, principal, "error.html", {"status": 403, "message": None}, 403)
            form = await request.form() if request.method == "POST" else None
            by_session = form is not None and not request.headers.get("authorization")
            if by_session and not hmac.compare_digest(str(form.get("csrf", "")) if form else "", _csrf(request)):
                return _page(request, state, principal, "error.html", {"status": 403, "message": "csrf"}, 403)
            try:
                # planning and the store block: in a worker thread, so other requests keep being served
                return await run_in_threadpool(handler, request, state, principal, form)
            except NotFound as exc:
                return _page(request, state, principal, "error.html", {"status": 404, "message": str(exc)}, 404)
            except (InvalidInput, PreconditionFailed) as exc:
                return _page(request, state, principal, "error.html", {"status": 400, "message": str(exc)}, 400)
            except StoreUnavailable as exc:
                return _page(request, state, principal, "error.html", {"status": 503, "message": str(exc)}, 503)

        return endpoint

    routes = [
        Route("/", view(overview, LEARNER_ROLES)),
        Route("/priorities", view(priorities_page, LEARNER_ROLES)),
        Route("/priorities.csv", view(priorities_csv, LEARNER_ROLES)),
        Route("/learners/{learner_id:str}", view(learner_page, LEARNER_ROLES)),
        Route("/models", view(models_page, MODEL_ROLES)),
        Route("/models/activate", view(activate, MODEL_ROLES), methods=["GET", "POST"]),
        Route("/models/rollback", view(rollback, MODEL_ROLES), methods=["GET", "POST"]),
        Route("/models/train", view(train, MODEL_ROLES), methods=["POST"]),
        Route("/signin", functools.partial(signin, state=state), methods=["GET", "POST"]),
        Route("/signout", functools.partial(signout, state=state), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(ServerTiming),
        Middleware(
            SessionMiddleware,
            secret_key=secret or session_secret(settings),
            session_cookie="luban_session",
            same_site="strict",
            https_only=settings.tls_cert_file is not None,
            max_age=12 * 3600,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)


class ServerTiming:
    """Adds `Server-Timing: app;dur=MS` (what the request cost the server, for `make bench` and the
    browser's developer tools) and headers that keep pages out of frames and caches."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={ms:.1f}".encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
                ]
                if not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)


# sign-in ------------------------------------------------------------------------------------
def _principal(request: Request, state: Dashboard) -> Principal | None:
    if state.tokens is None:
        return OPEN
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        return state.tokens.principal(token.strip()) if scheme.lower() == "bearer" else None
    digest = request.session.get("token")
    return state.tokens.by_digest(digest) if isinstance(digest, str) else None


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def _safe_next(target: str) -> str:
    """Only a path on this site (no scheme, no host): never an open redirect."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


async def signin(request: Request, state: Dashboard) -> Response:
    target = _safe_next(request.query_params.get("next", "/"))
    if state.tokens is None:
        return RedirectResponse(target, 303)
    error = False
    if request.method == "POST":
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), _csrf(request)):
            error = True
        else:
            token = str(form.get("token", "")).strip()
            principal = state.tokens.principal(token)
            if principal is not None:
                chosen = request.session.get("lang")
                request.session.clear()  # a new session on sign-in: nothing of another sign-in carries over
                request.session["token"] = TokenBook.digest(token)
                if chosen in INTERFACE_LOCALES:  # the language chosen on the sign-in page stays
                    request.session["lang"] = chosen
                landing = _safe_next(str(form.get("next", target)))
                if landing == "/" and not principal.roles & LEARNER_ROLES and principal.roles & MODEL_ROLES:
                    landing = "/models"  # an ML engineer's token: the page it may see
                return RedirectResponse(landing, 303)
            error = True
    return _page(request, state, None, "signin.html", {"error": error, "next": target}, 401 if error else 200)


async def signout(request: Request, state: Dashboard) -> Response:
    form = await request.form()
    if hmac.compare_digest(str(form.get("csrf", "")), _csrf(request)):
        request.session.clear()
    return RedirectResponse("/signin" if state.tokens is not None else "/", 303)


# rendering ----------------------------------------------------------------------------------
def _page(
    request: Request,
    state: Dashboard,
    principal: Principal | None,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
) -> Response:
    lang = negotiate(request.query_params.get("lang", ""), request.headers.get("accept-language", ""))
    chosen = request.query_params.get("lang", "")
    if chosen in INTERFACE_LOCALES:
        request.session["lang"] = chosen
    elif isinstance(request.session.get("lang"), str) and request.session["lang"] in INTERFACE_LOCALES:
        lang = request.session["lang"]
    t = translations(lang)
    here = {k: v for k, v in request.query_params.items() if k != "lang"}
    return state.templates.TemplateResponse(
        request,
        template,
        {
            "_": t.gettext,
            "ngettext": t.ngettext,
            "lang": lang,
            "languages": [(x, locale_name(x)) for x in INTERFACE_LOCALES],
            "here": here,
            "principal": principal,
            "auth_on": state.tokens is not None,
            "csrf": _csrf(request),
            "path": request.url.path,
            "can_learners": principal is not None and bool(principal.roles & LEARNER_ROLES),
            "can_models": principal is not None and bool(principal.roles & MODEL_ROLES),
            "fmt_time": lambda d: format_datetime(d, "medium", locale=lang) if d else "",
            "direction": direction,
            **context,
        },
        status_code=status,
    )


def _int(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidInput.of(name, "must be a whole number") from exc
    if not low <= number <= high:
        raise InvalidInput.of(name, f"must be in [{low}, {high}]")
    return number


# views --------------------------------------------------------------------------------------
def overview(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    q = request.query_params
    stalled_days = _int(q.get("stalled_days"), DEFAULT_STALLED_DAYS, 1, MAX_STALLED_DAYS, "stalled_days")
    data = state.insights.overview(principal.tenant, q.get("cohort", ""), q.get("role", ""), stalled_days)
    labels = [f"{10 * i}-{10 * (i + 1)}%" for i in range(READINESS_BINS)]
    catalog = state.insights.snapshot(principal.tenant).catalog
    return _page(
        request,
        state,
        principal,
        "overview.html",
        {
            "o": data,
            "bars": charts.grouped_bars([data.readiness_now, data.readiness_after], labels),
            "bin_labels": labels,
            "catalog": catalog,
            "stalled_shown": data.stalled[:STALLED_SHOWN],
            "refreshing": state.insights.refreshing(principal.tenant),
        },
    )


def priorities_page(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    cohort = request.query_params.get("cohort", "")
    data = state.insights.priorities(principal.tenant, cohort)
    cohorts = state.insights.cohorts(principal.tenant)
    catalog = state.insights.snapshot(principal.tenant).catalog
    return _page(
        request, state, principal, "priorities.html",
        {"p": data, "cohort": cohort, "cohorts": cohorts, "catalog": catalog,
         "refreshing": state.insights.refreshing(principal.tenant)},
    )  # fmt: skip


def priorities_csv(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    cohort = request.query_params.get("cohort", "")
    data = state.insights.priorities(principal.tenant, cohort)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "kind", "module_id", "skill_ids", "language", "learners"])
    for rank, p in enumerate(data.translations, 1):
        writer.writerow([rank, p.kind, p.module_id, p.skill_id, p.language, p.learners])
    for rank, p in enumerate(data.untaught, 1):
        writer.writerow([rank, p.kind, "", p.skill_id, p.language, p.learners])
    name = f"priorities-{principal.tenant}{'-' + cohort if cohort else ''}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


def learner_page(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    page = state.insights.learner(principal.tenant, request.path_params["learner_id"])
    catalog = state.app.catalogs.current(principal.tenant)
    content_lang = page.path.locale if page.path is not None else (page.learner.languages or ("en",))[0]
    role = catalog.roles.get(page.learner.target_role_id)
    required = {r.skill_id: state.app.settings.mastery_confidence for r in role.requirements} if role else {}
    skills = sorted({*required, *(s.skill_id for s in page.profile.skills)})
    key = content_lang.split("-", 1)[0]
    rows = []
    for skill_id in skills:
        skill = catalog.skills.get(skill_id)
        name = (skill.names.get(key) or skill.names.get("en") or skill_id) if skill else skill_id
        rows.append((name, page.profile.mastery_of(skill_id, 0.0), required.get(skill_id, math.nan)))
    timeline = charts.timeline([(e.occurred_at, e.score) for e in page.events], PASS_SCORE)
    return _page(
        request,
        state,
        principal,
        "learner.html",
        {
            "page": page,
            "bars": charts.mastery_bars(rows),
            "rows": rows,
            "timeline": timeline,
            "content_lang": content_lang,
            "catalog": catalog,
            "title_of": lambda module_id: _title(catalog, module_id, key),
        },
    )


def _title(catalog: Any, module_id: str, key: str) -> str:
    module = catalog.modules.get(module_id)
    if module is None:
        return str(module_id)
    return str(module.titles.get(key) or module.titles.get("en") or module_id)


BASELINE_ORDER = ("luban", "bkt", "cf_only", "popularity", "syllabus", "random")
METRICS = ("auc", "rmse", "ece", "ndcg@10")


def models_page(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    versions = state.insights.models(principal.tenant)
    shown = request.query_params.get("version") or next((v.info.version for v in versions if v.info.active), "")
    selected = next((v for v in versions if v.info.version == shown), versions[0] if versions else None)
    return _page(
        request,
        state,
        principal,
        "models.html",
        {
            "versions": versions,
            "selected": selected,
            "baselines": [b for b in BASELINE_ORDER if selected and b in selected.metrics],
            "metric_names": METRICS,
            "points": charts.calibration_points(selected.calibration) if selected else [],
            "jobs": state.insights.jobs(principal.tenant),
            "done": request.query_params.get("done", ""),
        },
    )


def activate(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    """GET: the confirmation; POST: the activation."""
    if request.method == "GET":
        version = request.query_params.get("version", "")
        info = state.app.models.info(version, principal.tenant)
        return _page(request, state, principal, "confirm.html", {"action": "activate", "info": info})
    info, _previous = state.app.models.activate(str(form.get("version", "")) if form else "", principal.tenant)
    return RedirectResponse(f"/models?{urlencode({'done': 'activated', 'version': info.version})}", 303)


def rollback(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    if request.method == "GET":
        return _page(request, state, principal, "confirm.html", {"action": "rollback", "info": None})
    info, _previous = state.app.models.rollback(principal.tenant)
    return RedirectResponse(f"/models?{urlencode({'done': 'rolled_back', 'version': info.version})}", 303)


def train(request: Request, state: Dashboard, principal: Principal, form: FormData | None) -> Response:
    """Start training in the background, in this process (never in the gRPC server's)."""
    try:
        state.app.training.start_job(TrainConfig(), force=False, tenant=principal.tenant)
    except LubanError as exc:
        return _page(request, state, principal, "error.html", {"status": 409, "message": str(exc)}, 409)
    return RedirectResponse("/models?done=training", 303)
