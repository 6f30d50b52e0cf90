"""`factory hub serve`: the loopback Hub as a user runs it, driven by the real `huggingface_hub` client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from huggingface_hub import HfApi

from tests.helpers import REPO


def serve(home, *args):
    env = {**os.environ, "FACTORY_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "factory", "hub", "serve", "--port", "0", *args], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3 if not args else 2)]
    url = lines[0].split(" at ")[1].split()[0]
    return proc, url, lines


def stop(proc):
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)


def test_single_user_with_a_generated_token(tmp_path):
    proc, url, lines = serve(tmp_path / "home")
    try:
        token = lines[1].strip().rsplit(" ", 1)[1]
        assert lines[1].startswith("token for user local (shown once): hf_local_")
        # the export line is enough for another shell: endpoint and token
        assert lines[2].startswith(f"export HF_ENDPOINT={url} HF_TOKEN={token} ")
        api = HfApi(endpoint=url, token=token)
        assert api.whoami()["name"] == "local"
        repo = api.create_repo("someorg/data", repo_type="dataset").repo_id  # the only user writes anywhere
        (tmp_path / "a.txt").write_text("hello")
        api.upload_file(path_or_fileobj=str(tmp_path / "a.txt"), path_in_repo="a.txt", repo_id=repo,
                        repo_type="dataset")
        assert "a.txt" in api.list_repo_files(repo, repo_type="dataset")
    finally:
        stop(proc)
    assert (tmp_path / "home" / "factory-store.json").is_file() and (tmp_path / "home" / "hub").is_dir()


def test_named_users_own_their_namespaces(tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    proc, url, lines = serve(tmp_path / "home", "--token", "alice=tok-a", "--token", "bob=tok-b")
    try:
        assert "alice" in lines[0] and "bob" in lines[0] and "tok-a" not in "".join(lines)
        assert "HF_TOKEN=<your token>" in lines[1]
        alice = HfApi(endpoint=url, token="tok-a")
        alice.create_repo("alice/model")
        try:
            alice.create_repo("bob/model")
            raise AssertionError("alice wrote into bob's namespace")
        except HfHubHTTPError as exc:
            assert exc.response.status_code == 403
    finally:
        stop(proc)


def test_bad_token_flag(tmp_path):
    r = subprocess.run([sys.executable, "-m", "factory", "--home", str(tmp_path / "h"), "hub", "serve", "--token",
                        "nobody"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--token expects USER=TOKEN" in r.stderr
