"""The person's own settings: how figures and moments are written for them."""

from __future__ import annotations

from babel import Locale
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect, render

from waiverdesk.core import formatting
from waiverdesk.core.errors import Invalid
from waiverdesk.web import page

from . import services
from .models import Profile
from .readers import reader_of

# The formats offered first; any CLDR locale may be typed in the API or kept from before.
LOCALES = ["en_US", "en_GB", "en_IE", "en_IN", "en_AU", "de_DE", "de_CH", "fr_FR", "fr_CA",
           "es_ES", "es_MX", "it_IT", "nl_NL", "sv_SE", "pl_PL", "pt_BR", "ja_JP", "zh_CN",
           "ko_KR"]  # fmt: skip


@page
def settings_page(request: HttpRequest):
    """Choose the format of numbers and dates and the time zone (blank: the browser's)."""
    profile = Profile.objects.filter(user=request.user).first() or Profile(user=request.user)
    problems = []
    if request.method == "POST":
        try:
            services.set_reading(request.user, request.POST.get("locale", ""),
                                 request.POST.get("time_zone", ""))  # fmt: skip
        except Invalid as invalid:
            problems = invalid.problems
            profile.locale = request.POST.get("locale", "")[:40]
            profile.time_zone = request.POST.get("time_zone", "")[:64]
        else:
            messages.success(request, "Your settings are saved.")
            return redirect("settings")
    reader = reader_of(request.user, request)
    kept = formatting.known_locale(profile.locale)
    locales = sorted({*LOCALES, *([kept] if kept else [])})
    context = {
        "profile": profile,
        "locales": [(code, _locale_name(code)) for code in locales],
        "zones": formatting.zone_names(),
        "reader": reader,
        "sample_money": reader.money(1200000, "USD"),
        "problems": problems,
        "problem_at": {p.field: p.message for p in problems},
    }
    return render(request, "settings.html", context, status=422 if problems else 200)


def _locale_name(code: str) -> str:
    return Locale.parse(code).get_display_name("en") or code
