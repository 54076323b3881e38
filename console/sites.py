"""The ops console: Django's admin site with the product's name, sections for what operators do, and a
dashboard as its landing page (``console.dashboard``). ``ConsoleAdminConfig`` makes it the default site,
so every app's ``@admin.register`` lands here unchanged."""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse

from console.dashboard import dashboard
from console.sections import OTHER, SECTIONS, section_of


class ConsoleSite(admin.AdminSite):
    site_header = "Wallet ops console"
    site_title = "Wallet ops console"
    index_title = "Dashboard"
    index_template = "console/dashboard.html"

    def get_urls(self):
        section = path("section/<slug:slug>/", self.admin_view(self.section_view), name="console_section")
        return [section, *super().get_urls()]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        """The sections (Ledger, Customers, Operations, Audit, then Other), each with the models the user may see.

        An app's own page (``/admin/<app_label>/``, the breadcrumbs' middle link) still lists that app's models.
        """
        if app_label is not None:
            return super().get_app_list(request, app_label)
        grouped: dict[str, dict] = {}
        for app in self._build_app_dict(request).values():
            for model in app["models"]:
                name, slug, position = section_of(app["app_label"], model["model"]._meta.model_name)
                section = grouped.setdefault(
                    slug,
                    {
                        "name": name,
                        "app_label": slug,
                        "app_url": reverse("admin:console_section", kwargs={"slug": slug}, current_app=self.name),
                        "has_module_perms": True,
                        "models": [],
                    },
                )
                section["models"].append((position, model["name"], model))
        order = [slug for _, slug, _ in SECTIONS] + [OTHER[1]]
        sections = [grouped[slug] for slug in order if slug in grouped]
        for section in sections:
            section["models"] = [model for _, _, model in sorted(section["models"], key=lambda m: m[:2])]
        return sections

    def section_view(self, request: HttpRequest, slug: str) -> TemplateResponse:
        sections = [section for section in self.get_app_list(request) if section["app_label"] == slug]
        if not sections:
            raise Http404("no such section")
        context = {
            **self.each_context(request),
            "title": sections[0]["name"],
            "subtitle": None,
            "app_list": sections,
            "app_label": slug,
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/app_index.html", context)

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        context = {
            "dashboard": dashboard(),
            "can_queue_reconcile": request.user.has_perm("audit.queue_reconcilerun"),
            **(extra_context or {}),
        }
        return super().index(request, extra_context=context)
