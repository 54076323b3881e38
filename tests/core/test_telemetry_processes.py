"""Tracing on or off is decided once per process, at start, by the OTEL_* variables: checked in fresh processes."""

import json
import subprocess
import sys

import pytest

from tests.otel import ROOT, clean_env

STATE_SCRIPT = """
import json, sys
import confluent_kafka, httpx, psycopg
from django.conf import settings
from opentelemetry import trace
from wallet_project.core import telemetry
print("OTEL-STATE " + json.dumps({
    "sdk_imported": sorted({m.split(".")[1] for m in sys.modules if m.startswith(("opentelemetry.sdk",
        "opentelemetry.instrumentation", "opentelemetry.exporter"))}),
    "provider": type(trace.get_tracer_provider()).__name__,
    "django_middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
    "psycopg_connect_wrapped": hasattr(psycopg.connect, "__wrapped__")
        and hasattr(psycopg.Connection.connect, "__wrapped__"),
    "kafka_producer_class": confluent_kafka.Producer.__module__ + "." + confluent_kafka.Producer.__name__,
    "kafka_producer_wrapped": telemetry.producer_instrumentation is not None,
    "server_binding_traced": telemetry.server_binding_instrumentation is not None,
    "httpx_transport_wrapped": hasattr(httpx.HTTPTransport.handle_request, "__wrapped__"),
}))
"""


def process_state(**otel: str) -> dict:
    env = {**clean_env(), "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test", **otel}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", STATE_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("OTEL-STATE ")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    return json.loads(lines[-1].removeprefix("OTEL-STATE "))


def test_with_no_otel_variables_nothing_beyond_the_api_is_imported_or_patched():
    assert not any(name.startswith("OTEL_") for name in clean_env())
    assert process_state() == {
        "sdk_imported": [],
        "provider": "ProxyTracerProvider",
        "django_middleware": [],
        "psycopg_connect_wrapped": False,
        "kafka_producer_class": "cimpl.Producer",
        "kafka_producer_wrapped": False,
        "server_binding_traced": False,
        "httpx_transport_wrapped": False,
    }


@pytest.mark.parametrize(
    "otel",
    [
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    ],
)
def test_tracing_switched_off_explicitly_stays_off(otel):
    state = process_state(**otel)
    assert state["provider"] == "ProxyTracerProvider"
    assert state["sdk_imported"] == [] and not state["psycopg_connect_wrapped"]


def test_an_otlp_endpoint_turns_every_instrumentation_on():
    # Nothing listens on port 9: the process exports nothing (no span is made) and exits at once.
    state = process_state(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_BSP_EXPORT_TIMEOUT="500")
    assert state["provider"] == "TracerProvider"
    assert {"sdk", "instrumentation", "exporter"} <= set(state["sdk_imported"])
    assert state["django_middleware"] == [
        "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    ]
    assert state["psycopg_connect_wrapped"] and state["httpx_transport_wrapped"]
    assert state["kafka_producer_wrapped"] and state["server_binding_traced"]
    # The producers are wrapped where the outbox produces (telemetry.traced_producer), not patched globally.
    assert state["kafka_producer_class"] == "cimpl.Producer"
