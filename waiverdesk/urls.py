from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from waiverdesk import health, web
from waiverdesk.api import views as tokens
from waiverdesk.api.api import api
from waiverdesk.audit import views as audit
from waiverdesk.billing import views as billing
from waiverdesk.directory import (
    oidc,
    passwords,
    people_pages,
    reference_pages,
    signing_in,
)
from waiverdesk.directory import views as directory
from waiverdesk.governance import views as governance
from waiverdesk.insight import views as insight
from waiverdesk.notifications import views as notifications
from waiverdesk.policies import views as policy
from waiverdesk.privacy import views as privacy
from waiverdesk.waivers import approval_pages, lists
from waiverdesk.waivers import views as waivers
from waiverdesk.webhooks import views as webhooks


def openapi(request):
    """The OpenAPI 3.1 document of /api/v1/, where SPEC §7 says clients find it."""
    return JsonResponse(api.get_openapi_schema(path_prefix="/api/v1/"))


def scim(name: str):
    """A SCIM endpoint (directory/scim.py), loaded at its first request: its models of RFC
    7643 take a second to import, which every command and server start would pay."""

    @csrf_exempt  # as the endpoint itself is: a SCIM client sends a token, not a form
    def endpoint(request, **kwargs):
        from waiverdesk.directory import scim as views

        return getattr(views, name)(request, **kwargs)

    return endpoint


handler500 = "waiverdesk.api.errors.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("api/openapi.json", openapi, name="openapi"),
    # The web UI
    path("", web.home, name="home"),
    path("sign-in/", signing_in.SignIn.as_view(), name="sign-in"),
    path("sign-out/", signing_in.SignOut.as_view(), name="sign-out"),
    path("oidc/authenticate/", oidc.authenticate, name="oidc-authenticate"),
    path("oidc/callback/", oidc.callback, name="oidc-callback"),
    path("password/", passwords.change, name="password-change"),
    path("password/reset/", passwords.reset, name="password-reset"),
    path(
        "password/reset/<str:uid>/<str:token>/",
        passwords.reset_confirm,
        name="password-reset-confirm",
    ),  # fmt: skip
    path("manage/customers/", reference_pages.customers, name="customers-admin"),
    path("manage/customers/<str:external_id>/", reference_pages.customer, name="customer-admin"),
    path("manage/products/", reference_pages.products, name="products-admin"),
    path("manage/rates/", reference_pages.exchange_rates, name="rates-admin"),
    path("manage/webhooks/", webhooks.webhooks, name="webhooks-admin"),
    path("manage/webhooks/<int:pk>/disable", webhooks.disable, name="webhook-disable"),
    path("manage/privacy/", privacy.privacy, name="privacy"),
    path("manage/privacy/erase", privacy.erase, name="privacy-erase"),
    path("manage/privacy/hold", privacy.hold, name="privacy-hold"),
    path("manage/privacy/holds/<int:pk>/release", privacy.release, name="privacy-release"),
    path("people/", people_pages.people_list, name="people"),
    path("people/<str:username>/", people_pages.person_page, name="person"),
    path("people/<str:username>/change", people_pages.person_change, name="person-change"),
    path("scim/v2/Users", scim("users"), name="scim-users"),
    path("scim/v2/Users/<str:pk>", scim("users"), name="scim-user"),
    path("scim/v2/Groups", scim("groups"), name="scim-groups"),
    path("scim/v2/Groups/<str:pk>", scim("groups"), name="scim-group"),
    path("scim/v2/ServiceProviderConfig", scim("service_provider_config"), name="scim-config"),
    path("scim/v2/ResourceTypes", scim("resource_types"), name="scim-resource-types"),
    path("scim/v2/ResourceTypes/<str:name>", scim("resource_types"), name="scim-resource-type"),
    path("scim/v2/Schemas", scim("schemas"), name="scim-schemas"),
    path("scim/v2/Schemas/<str:urn>", scim("schemas"), name="scim-schema"),
    path("scim/v2/.search", scim("search_all"), name="scim-search"),
    path("scim/v2/<path:rest>", scim("unknown"), name="scim-unknown"),
    path("scim/v2/", scim("unknown"), name="scim-root"),
    path("requests/", lists.my_requests, name="my-requests"),
    path("requests/all/", lists.all_requests, name="all-requests"),
    path("requests/decide", lists.decide_many, name="decide-many"),
    path("customers/<str:external_id>/", lists.customer_page, name="customer"),
    path("products/<str:code>/", lists.product_page, name="product"),
    path("filters/", lists.save_filter, name="save-filter"),
    path("filters/<int:pk>/remove", lists.forget_filter, name="forget-filter"),
    path("requests/new/", waivers.new_request, name="new-request"),
    path("requests/new/<slug:type_name>/", waivers.request_form_page, name="request-form"),
    path("requests/new/<slug:type_name>/preview", waivers.preview, name="preview"),
    path("requests/<str:reference>/", waivers.waiver_page, name="waiver"),
    path(
        "requests/<str:reference>/edit/<slug:type_name>/",
        waivers.request_form_page,
        name="edit-request",
    ),
    path("requests/<str:reference>/tasks/<int:pk>/done", waivers.task_done, name="task-done"),
    path("requests/<str:reference>/notice/", waivers.customer_notice, name="customer-notice"),
    path(
        "requests/<str:reference>/notice.pdf",
        waivers.customer_notice,
        {"as_pdf": True},
        name="customer-notice-pdf",
    ),
    path("requests/<str:reference>/notices/<int:pk>.pdf", waivers.sent_notice, name="sent-notice"),
    path("requests/<str:reference>/feedback", insight.give_feedback, name="feedback"),
    path("requests/<str:reference>/evidence/<int:pk>", waivers.attachment, name="attachment"),
    path("requests/<str:reference>/evidence/", waivers.add_evidence, name="add-evidence"),
    path("requests/<str:reference>/<slug:action>", waivers.act, name="act"),
    path("implementation/", waivers.implementation, name="implementation"),
    path("inbox/", lists.inbox, name="inbox"),
    path("decide/<str:token>/", approval_pages.decide_from_email, name="decide-link"),
    path("settings/delegations/", approval_pages.delegations, name="delegations"),
    path("settings/delegations/<int:pk>/end", approval_pages.end_delegation, name="delegation-end"),
    path("dashboard/", waivers.dashboard, name="dashboard"),
    path("audit/", audit.trail, name="audit-trail"),
    path("audit/trail.jsonl", audit.export, name="audit-export"),
    path("audit/proofs/<str:reference>.json", audit.proof, name="audit-proof"),
    path("settings/", directory.settings_page, name="settings"),
    path("policy/", policy.policy_page, name="policy"),
    path("policy/versions/", policy.history, name="policy-history"),
    path("policy/versions/<int:number>/approve/", policy.approve, name="policy-approve"),
    path("policy/replay/", insight.replay_page, name="policy-replay"),
    path("policy/diff/<int:old>/<int:new>/", policy.diff, name="policy-diff"),
    path("tokens/", tokens.tokens, name="tokens"),
    path("preferences/", notifications.preferences, name="preferences"),
    path("billing/", billing.reconciliation, name="reconciliation"),
    path("metrics/", insight.metrics_page, name="metrics"),
    path("metrics.csv", insight.metrics_csv, name="metrics-csv"),
    path("metrics/report.pdf", insight.report_pdf, name="report-pdf"),
    path("governance/", governance.governance, name="governance"),
    path("governance/campaigns/<int:pk>/", governance.campaign, name="campaign"),
    path("governance/reviews/<int:pk>/attest", governance.attest, name="attest"),
    path("billing.csv", billing.reconciliation, {"as_csv": True}, name="reconciliation-csv"),
    path("tokens/<int:pk>/revoke", tokens.revoke, name="revoke-token"),
]
