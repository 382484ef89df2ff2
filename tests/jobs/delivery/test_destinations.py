"""The destinations of the routes file: validated at load, named by the routes that send to
them, with a bounded exponential backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.delivery import DicomwebDestination, DimseDestination, RetryPolicy
from jobs.routing import RoutesError, RoutingRules, SeriesFacts

ROUTES = """
destinations:
  pacs: {kind: dimse, ae_title: ORTHANC, host: 127.0.0.1, port: 4242}
  archive: {kind: dicomweb, url: "https://pacs.example.org/dicom-web", token_env: ARCHIVE_TOKEN, retry: {max_attempts: 3, backoff_s: 2}}
routes:
  - name: chest-ct
    match: {modality: [CT]}
    models: [segmenter]
    send:
      - {destination: pacs, outputs: [seg, sr]}
  - name: everything-ct
    match: {modality: [CT]}
    models: [segmenter, classifier]
    send:
      - {destination: archive, outputs: [sc]}
"""


def rules_of(tmp_path: Path, text: str) -> RoutingRules:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return RoutingRules.load(path)


def test_destinations_are_loaded_by_kind(tmp_path: Path) -> None:
    rules = rules_of(tmp_path, ROUTES)
    assert rules.destinations["pacs"] == DimseDestination(kind="dimse", ae_title="ORTHANC", host="127.0.0.1", port=4242)
    archive = rules.destinations["archive"]
    assert isinstance(archive, DicomwebDestination) and archive.retry.max_attempts == 3 and archive.retry.backoff_s == 2


def test_a_model_gets_the_sends_of_every_matching_rule_that_chose_it(tmp_path: Path) -> None:
    rules = rules_of(tmp_path, ROUTES)
    ct = SeriesFacts(modality="CT", slices=20)
    assert [(s.destination, s.outputs) for s in rules.sends(ct, "segmenter", [])] == [("pacs", ["seg", "sr"]), ("archive", ["sc"])]
    assert [(s.destination, s.outputs) for s in rules.sends(ct, "classifier", [])] == [("archive", ["sc"])]
    assert rules.sends(SeriesFacts(modality="MR", slices=20), "segmenter", []) == []


def test_the_default_rules_send_nothing() -> None:
    assert RoutingRules().sends(SeriesFacts(modality="CT", slices=20), "segmenter", []) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("routes:\n  - {name: a, models: [m], send: [{destination: nowhere, outputs: [seg]}]}\n", "routes[0].send[0].destination: 'nowhere' is not among destinations"),
        ("destinations: {p: {kind: dimse, ae_title: P, host: h, port: 70000}}\nroutes: [{name: a, models: [m]}]\n", "destinations.p.dimse.port"),
        ("destinations: {p: {kind: dimse, ae_title: 'BACK\\\\SLASH', host: h, port: 104}}\nroutes: [{name: a, models: [m]}]\n", "destinations.p.dimse.ae_title"),
        ("destinations: {p: {kind: ftp, url: x}}\nroutes: [{name: a, models: [m]}]\n", "destinations.p"),
        ("destinations: {w: {kind: dicomweb, url: 'file:///etc/passwd'}}\nroutes: [{name: a, models: [m]}]\n", "destinations.w.dicomweb.url"),
        (
            "destinations: {p: {kind: dimse, ae_title: P, host: h, port: 104}}\nroutes: [{name: a, models: [m], send: [{destination: p, outputs: [json]}]}]\n",
            "routes[0].send[0].outputs[0]",
        ),
    ],
    ids=["undefined-destination", "port-out-of-range", "ae-title-with-backslash", "unknown-kind", "non-http-url", "non-dicom-output"],
)
def test_a_wrong_destination_or_send_is_named_at_load(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(RoutesError) as raised:
        rules_of(tmp_path, text)
    assert problem in str(raised.value)


def test_the_backoff_doubles_from_its_base_up_to_its_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_s=5, max_backoff_s=60)
    assert [policy.delay_s(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_a_bearer_token_is_read_from_its_environment_variable_when_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    destination = DicomwebDestination(kind="dicomweb", url="https://pacs/dicom-web", token_env="ARCHIVE_TOKEN")
    monkeypatch.delenv("ARCHIVE_TOKEN", raising=False)
    assert destination.bearer_token() is None
    monkeypatch.setenv("ARCHIVE_TOKEN", "s3cret")
    assert destination.bearer_token() == "s3cret"
