"""Structured outputs: `factory generate --schema`, through the real openai and anthropic SDKs against the stub."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from factory.cli.main import cli
from factory.llm.structured import load_schema, strict_schema
from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import write_jsonl

ROWS = [{"id": f"r{i}", "instruction": f"Describe dish number {i}."} for i in range(5)]


class Dish(BaseModel):
    """What `--schema tests.test_structured:Dish` names."""

    name: str
    minutes: int
    price: float
    vegan: bool
    tags: list[str]
    note: str | None = None


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.fixture
def stub(monkeypatch):
    seen: list[dict] = []

    def start(responder=None, **options):
        def record(call):
            seen.append(call["body"])
            return responder(call) if responder else None

        # no responder: the stub's own reply, a minimal instance of the requested schema
        server = StubLLMServer(responder=record if responder else None, **options).start()
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-structured-test")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-structured-test")
        servers.append(server)
        return server, seen

    servers: list[StubLLMServer] = []
    yield start
    for s in servers:
        s.stop()


def _seed(tmp_path, home):
    r = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "d.jsonl", ROWS)), "--name", "d")
    assert r.exit_code == 0, r.output


def test_a_pydantic_schema_stores_typed_columns_over_openai_strict_json_schema(tmp_path, stub):
    home = tmp_path / "home"
    _seed(tmp_path, home)
    server, _ = stub()
    r = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--schema", "tests.test_structured:Dish")
    assert r.exit_code == 0, r.output
    version = Store(home).resolve(r.stdout.strip())
    df = version.read()
    assert df.height == 5 and df["error"].null_count() == 5
    assert df.schema["minutes"] == pl.Int64 and df.schema["price"] == pl.Float64
    assert df.schema["vegan"] == pl.Boolean and df.schema["tags"] == pl.List(pl.String)
    for row in df.iter_rows(named=True):
        assert Dish.model_validate_json(row["response"]).minutes == row["minutes"]
    assert server.stats()["requests"] == 5
    # without --schema the same rows are another version: the schema is part of the recipe
    plain = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--name", "plain")
    assert plain.exit_code == 0 and "minutes" not in Store(home).resolve("plain").read().columns


def test_the_openai_request_carries_a_strict_schema_and_anthropic_a_forced_tool_call(tmp_path, stub):
    home = tmp_path / "home"
    _seed(tmp_path, home)
    schema_file = tmp_path / "dish.schema.json"
    schema_file.write_text(json.dumps({"title": "Dish", "type": "object", "required": ["name", "minutes"],
                                       "properties": {"name": {"type": "string"}, "minutes": {"type": "integer"},
                                                      "spicy": {"type": "boolean"}}}))

    def fill(call):  # what a model honouring the schema sends back
        return json.dumps({"name": call["prompt"][:20], "minutes": 7, "spicy": None})

    server, seen = stub(fill)
    for llm, name in (("openai:stub-model", "o"), ("anthropic:stub-model", "a")):
        r = invoke(home, "generate", "d", "--llm", llm, "--schema", str(schema_file), "--name", name, "--n", "2")
        assert r.exit_code == 0, r.output
        df = Store(home).resolve(name).read()
        assert df["minutes"].to_list() == [7, 7] and df.schema["spicy"] == pl.Boolean
        assert df["spicy"].to_list() == [None, None] and df["error"].null_count() == 2
    openai_body, anthropic_body = seen[0], seen[-1]
    fmt = openai_body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Dish"
    strict = fmt["json_schema"]["schema"]
    assert strict["additionalProperties"] is False and strict["required"] == ["name", "minutes", "spicy"]
    assert anthropic_body["tool_choice"] == {"type": "tool", "name": "Dish"}
    assert anthropic_body["tools"][0]["input_schema"] == strict


def test_invalid_json_is_retried_then_kept_as_a_failed_row_and_never_cached(tmp_path, stub):
    home = tmp_path / "home"
    _seed(tmp_path, home)

    def reply(call):  # row 0 never answers JSON, row 1 answers JSON of the wrong shape, the rest are fine
        if "number 0" in call["prompt"]:
            return "Sure! Here is a dish: pasta."
        if "number 1" in call["prompt"]:
            return json.dumps({"name": "x", "minutes": "soon", "price": 1, "vegan": True, "tags": []})
        return json.dumps({"name": "ok", "minutes": 3, "price": 2.5, "vegan": False, "tags": ["a"]})

    server, _ = stub(reply)
    args = ["generate", "d", "--llm", "openai:stub-model", "--schema", "tests.test_structured:Dish",
            "--schema-retries", "2"]
    r = invoke(home, *args)
    assert r.exit_code == 0, r.output
    df = Store(home).resolve(r.stdout.strip()).read().sort("id")
    errors = df["error"].to_list()
    assert "invalid structured output" in errors[0] and "Invalid JSON" in errors[0]
    assert "minutes" in errors[1] and errors[2:] == [None, None, None]
    assert df["response"].to_list()[:2] == [None, None] and df["minutes"].to_list()[:2] == [None, None]
    assert df["minutes"].to_list()[2:] == [3, 3, 3]
    by_key = sorted(server.stats()["by_key"].values())
    assert by_key == [1, 1, 1, 3, 3]  # each bad row: 1 try + 2 retries; good rows once
    assert Store(home).resolve(r.stdout.strip()).manifest.counters["failed"] == 2
    server.reset()
    again = invoke(home, *args)  # failures were not cached: only the two bad rows are asked again
    assert again.exit_code == 0 and server.stats()["requests"] == 6


def test_bad_schemas_are_one_line_errors(tmp_path, stub):
    home = tmp_path / "home"
    _seed(tmp_path, home)
    stub()
    for spec, message in (("nope.json", "no such JSON Schema file"), ("json:dumps", "not a pydantic model"),
                          ("no_such_module_x:Y", "cannot import"), ("plain", "module:Class")):
        r = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--schema", spec)
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (spec, r.output)
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"type": "object", "properties": {"error": {"type": "string"}}}))
    r = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--schema", str(clash))
    assert r.exit_code == 2 and "'error'" in r.output


def test_strict_schema_closes_objects_and_makes_optional_fields_nullable():
    schema = load_schema("tests.test_structured:Dish")
    assert schema.json_schema["required"] == ["name", "minutes", "price", "vegan", "tags", "note"]
    assert {"type": "null"} in schema.json_schema["properties"]["note"]["anyOf"]
    assert "default" not in json.dumps(schema.json_schema)
    nested = strict_schema({"type": "object", "properties": {"default": {"type": "object", "properties": {
        "x": {"type": "integer"}}}}})
    inner = nested["properties"]["default"]["anyOf"][0]  # a field named "default" is a field, not a default
    assert inner["additionalProperties"] is False and inner["required"] == ["x"]
    assert schema.validate('```json\n{"name": "a", "minutes": 1, "price": 1, "vegan": true, "tags": []}\n```')[
        "minutes"] == 1


class Verdict(BaseModel):
    """A judge's verdict schema: `--set response_schema=tests.test_structured:Verdict`."""

    rationale: str
    score: int
    issues: list[str]


def test_schemes_and_judges_take_a_schema_as_a_stage_option(tmp_path, stub):
    home = tmp_path / "home"
    rows = [{"id": f"t{i}", "inputs": f"Describe dish number {i}.", "targets": ""} for i in range(3)]
    r = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "t.jsonl", rows)), "--name", "t")
    assert r.exit_code == 0, r.output

    def reply(call):
        if "issues" in json.dumps(call["body"]):  # the judge's verdict schema
            return json.dumps({"rationale": "fine", "score": 7, "issues": ["too short"]})
        return json.dumps({"name": "soup", "minutes": 12, "price": 3.5, "vegan": True, "tags": ["hot"]})

    server, seen = stub(responder=reply)
    built = invoke(home, "build", "orca", "--from", "t", "--llm", "openai:stub-model", "--name", "dishes",
                   "--set", "response_schema=tests.test_structured:Dish")
    assert built.exit_code == 0, built.output
    df = Store(home).resolve("dishes").read()
    assert df["minutes"].to_list() == [12] * 3 and df.schema["vegan"] == pl.Boolean
    assert all(b["response_format"]["json_schema"]["strict"] for b in seen)
    seen.clear()
    judged = invoke(home, "judge", "dishes", "--with", "openai:stub-model", "--keep-all", "--name", "judged",
                    "--set", "response_schema=tests.test_structured:Verdict")
    assert judged.exit_code == 0, judged.output
    jdf = Store(home).resolve("judged").read()
    assert jdf["judge_score"].to_list() == [7.0] * 3
    issues = next(c for c in jdf.columns if c.endswith("issues"))
    assert jdf[issues].to_list() == [["too short"]] * 3
    assert seen and all(b["response_format"]["json_schema"]["schema"]["required"] == ["rationale", "score", "issues"]
                        for b in seen)
