"""``tflite-budget comment`` against a small fake of GitHub's REST API on 127.0.0.1: it creates
the comment, updates its own on a later push (found across pages), and never edits a comment it
did not write. The attacks of issue 17: a marker comment planted by another user (also with the
exact expected body), a wrong pull request number or head commit (``--head-sha``), and a redirect
to 127.0.0.2 that must not see the token."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_tflite.cli import main

REPO = "octo/models"
PR = 7
TOKEN = "test-token-123"
OURS = "<!-- pytest-tflite:budgets -->"


@dataclass
class FakeGitHub:
    """The three endpoints, with pages of ``page_size`` comments and Link headers as GitHub
    sends them; every request is recorded."""

    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 2
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    fail_with: tuple[int, dict[str, Any]] | None = None
    next_link_host: str | None = None  # a Link header that points elsewhere
    heads: dict[int, str] = field(default_factory=dict)  # GET /repos/{REPO}/pulls/{n}: head.sha
    login: str | None = None  # GET /user; None: 403, as for a workflow's GITHUB_TOKEN
    redirect: tuple[str, int] | None = None  # (URL root, status) every comments call is sent to
    moved: dict[str, str] = field(default_factory=dict)  # renamed repository -> its new name
    next_id: int = 1000
    url: str = ""

    def add(self, body: str, number: int = PR, user: str = "someone") -> int:
        self.next_id += 1
        self.comments.setdefault(number, []).append(
            {"id": self.next_id, "body": body, "user": {"login": user},
             "html_url": f"https://github.com/{REPO}/pull/{number}#issuecomment-{self.next_id}"})
        return self.next_id

    def bodies(self, number: int = PR) -> dict[int, str]:
        return {c["id"]: c["body"] for c in self.comments.get(number, [])}

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.requests]


def handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

        def reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def handle_any(self, method: str) -> None:
            fake.requests.append((method, self.path, self.headers.get("Authorization")))
            if fake.fail_with is not None:
                self.reply(*fake.fail_with)
                return
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.reply(401, {"message": "Bad credentials"})
                return
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")
            for old, new in fake.moved.items():  # as GitHub: 301 for GET, 307 for the rest
                if parts.path.startswith(f"/repos/{old}/"):
                    target = self.path.replace(f"/repos/{old}/", f"/repos/{new}/", 1)
                    self.reply(301 if method == "GET" else 307, {"message": "Moved Permanently"},
                               {"Location": fake.url + target})
                    return
            if fake.redirect is not None and parts.path.endswith("/comments"):
                root, status = fake.redirect
                self.reply(status, {"message": "Found"}, {"Location": root + self.path})
                return
            if parts.path == "/user":
                if fake.login is None:
                    self.reply(403, {"message": "Resource not accessible by integration"})
                else:
                    self.reply(200, {"login": fake.login, "type": "User"})
                return
            if segments[:4] == ["repos", *REPO.split("/"), "pulls"] and len(segments) == 5:
                number = int(segments[4])
                if number in fake.heads:
                    self.reply(200, {"number": number, "head": {"sha": fake.heads[number]}})
                else:
                    self.reply(404, {"message": "Not Found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length)) if length else None
            # /repos/{owner}/{name}/issues/{number}/comments
            if segments[:3] == ["repos", *REPO.split("/")] and segments[3] == "issues":
                if len(segments) == 6 and segments[5] == "comments":
                    number = int(segments[4])
                    if method == "GET":
                        page = int(parse_qs(parts.query).get("page", ["1"])[0])
                        found = fake.comments.get(number, [])
                        start = (page - 1) * fake.page_size
                        headers = {}
                        if start + fake.page_size < len(found):
                            host = fake.next_link_host or fake.url
                            headers["Link"] = (f'<{host}{parts.path}?per_page={fake.page_size}&'
                                               f'page={page + 1}>; rel="next", '
                                               f'<{host}{parts.path}?page=1>; rel="first"')
                        self.reply(200, found[start:start + fake.page_size], headers)
                        return
                    if method == "POST":
                        new_id = fake.add(payload["body"], number, user="github-actions[bot]")
                        self.reply(201, fake.comments[number][-1] | {"id": new_id})
                        return
                if len(segments) == 6 and segments[4] == "comments" and method == "PATCH":
                    wanted = int(segments[5])
                    for comments in fake.comments.values():
                        for comment in comments:
                            if comment["id"] == wanted:
                                comment["body"] = payload["body"]
                                self.reply(200, comment)
                                return
            self.reply(404, {"message": "Not Found",
                             "documentation_url": "https://docs.github.com/rest"})

        def do_GET(self) -> None:
            self.handle_any("GET")

        def do_POST(self) -> None:
            self.handle_any("POST")

        def do_PATCH(self) -> None:
            self.handle_any("PATCH")

    return Handler


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return TOKEN


def body_file(tmp_path: Path, text: str, name: str = "comment.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def post(fake: FakeGitHub, body: Path, *extra: str) -> int:
    return main(["comment", "--repo", REPO, "--pr", str(PR), "--body", str(body),
                 "--api-url", fake.url, *extra])


def others(fake: FakeGitHub) -> dict[int, str]:
    """Comments that are not ours: another tool's, a person's, one that quotes our marker."""
    return {
        fake.add("<!-- other-tool:budgets -->\nAnother tool's report"): "",
        fake.add("LGTM, but see the size of the int8 model"): "",
        fake.add(f"Quoting the bot: {OURS} is how it finds its comment"): "",
        fake.add("<!-- pytest-tflite:nightly -->\nthe same tool, another comment id"): "",
    }


def test_creates_the_comment_and_leaves_every_other_comment_alone(github, token, tmp_path,
                                                                  capsys):
    ids = others(github)
    before = github.bodies()
    body = f"{OURS}\n### TFLite model budgets\nsize +5%\n"
    assert post(github, body_file(tmp_path, body)) == 0
    after = github.bodies()
    new = [i for i in after if i not in ids]
    assert len(new) == 1 and after[new[0]] == body
    assert {i: after[i] for i in ids} == before
    assert "PATCH" not in github.methods()
    # Four comments at two a page: three pages read, then one POST.
    assert github.methods() == ["GET", "GET", "POST"]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in github.requests)
    out = capsys.readouterr().out
    assert f"created comment {new[0]} on {REPO}#{PR}: https://github.com/{REPO}/pull/7#" in out


def test_updates_its_own_comment_found_on_a_later_page(github, token, tmp_path, capsys):
    others(github)
    github.add("a person's comment")
    ours = github.add(f"{OURS}\nold figures", user="github-actions[bot]")
    github.add("a later comment")
    before = github.bodies()
    body = f"{OURS}\nnew figures\n"
    assert post(github, body_file(tmp_path, body)) == 0
    after = github.bodies()
    assert after[ours] == body
    assert {i: b for i, b in after.items() if i != ours} == \
        {i: b for i, b in before.items() if i != ours}
    assert len(after) == len(before)
    assert "POST" not in github.methods()
    patches = [path for method, path, _ in github.requests if method == "PATCH"]
    assert patches == [f"/repos/{REPO}/issues/comments/{ours}"]
    pages = [path for method, path, _ in github.requests if method == "GET"]
    # The sixth comment, at two a page: found on the third page, and the seventh never read.
    assert len(pages) == 3 and pages[-1].endswith("page=3")
    assert f"updated comment {ours}" in capsys.readouterr().out
    # The same body again changes nothing and says so.
    github.requests.clear()
    assert post(github, body_file(tmp_path, body)) == 0
    assert "PATCH" not in github.methods() and "POST" not in github.methods()
    assert f"unchanged comment {ours}" in capsys.readouterr().out


def test_each_comment_id_keeps_its_own_comment(github, token, tmp_path):
    nightly = github.add("<!-- pytest-tflite:nightly -->\nold nightly", user="github-actions[bot]")
    assert post(github, body_file(tmp_path, f"{OURS}\nbudgets\n")) == 0
    assert github.bodies()[nightly] == "<!-- pytest-tflite:nightly -->\nold nightly"
    assert post(github, body_file(tmp_path, "<!-- pytest-tflite:nightly -->\nnew nightly\n")) == 0
    bodies = github.bodies()
    assert bodies[nightly] == "<!-- pytest-tflite:nightly -->\nnew nightly\n"
    assert sum(b.startswith(OURS) for b in bodies.values()) == 1


def test_a_body_written_by_the_plugin_round_trips(github, token, tmp_path):
    from pytest_tflite.reports.markdown import comment_body
    from tests.helpers.entries import compared_entry

    text = comment_body([compared_entry()], "gate")
    assert post(github, body_file(tmp_path, text)) == 0
    assert list(github.bodies().values()) == [text]


def test_missing_token_is_a_clear_error(github, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("EMPTY_TOKEN", "  ")
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n")) == 2
    assert "no token: set the environment variable GITHUB_TOKEN" in capsys.readouterr().err
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n"), "--token-env", "EMPTY_TOKEN") == 2
    assert "EMPTY_TOKEN" in capsys.readouterr().err
    assert github.requests == []
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n"), "--token-env", "MY_TOKEN") == 0


def test_http_errors_give_status_and_githubs_message(github, token, tmp_path, capsys):
    github.fail_with = (403, {"message": "Resource not accessible by integration",
                              "errors": [{"code": "forbidden", "message": "read-only token"}]})
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n")) == 2
    err = capsys.readouterr().err
    assert "tflite-budget: error: GET http://127.0.0.1:" in err
    assert "HTTP 403 Forbidden: Resource not accessible by integration (read-only token)" in err
    github.fail_with = None
    assert main(["comment", "--repo", "octo/missing", "--pr", "1", "--body",
                 str(body_file(tmp_path, f"{OURS}\nx\n")), "--api-url", github.url]) == 2
    assert "HTTP 404 Not Found: Not Found" in capsys.readouterr().err


def test_bad_input_is_refused_before_any_request(github, token, tmp_path, capsys):
    assert post(github, body_file(tmp_path, "no marker here\n")) == 2
    assert "does not start with a pytest-tflite marker" in capsys.readouterr().err
    assert post(github, body_file(tmp_path, OURS + "\n" + "x" * 70_000)) == 2
    assert "GitHub takes at most 65,536" in capsys.readouterr().err
    assert post(github, tmp_path / "missing.md") == 2
    assert "cannot read the comment body" in capsys.readouterr().err
    assert main(["comment", "--repo", "not-a-repo", "--pr", "1", "--body",
                 str(body_file(tmp_path, f"{OURS}\n")), "--api-url", github.url]) == 2
    assert "--repo must be OWNER/NAME" in capsys.readouterr().err
    assert main(["comment", "--repo", REPO, "--pr", "0", "--body", "x"]) == 2  # usage error
    assert github.requests == []


def test_the_token_never_leaves_the_api_host(github, token, tmp_path, capsys):
    for _ in range(3):
        github.add("filler")
    github.next_link_host = "http://127.0.0.2:9"
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n")) == 2
    assert "refusing to send the token to another host" in capsys.readouterr().err
    assert github.methods() == ["GET"]


def test_an_unreachable_api_is_a_clear_error(token, tmp_path, capsys):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["comment", "--repo", REPO, "--pr", "1", "--body",
                 str(body_file(tmp_path, f"{OURS}\n")),
                 "--api-url", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot reach the API" in capsys.readouterr().err


# --- issue 17: the comment belongs to the bot ------------------------------------------------

BOT = "github-actions[bot]"
HEAD = "c0ffee" * 6 + "c0ff"  # 40 hex digits


def test_a_marker_comment_planted_by_someone_else_is_never_edited(github, token, tmp_path,
                                                                  capsys):
    """A PR author who writes the marker first: before issue 17 the bot PATCHed *their*
    comment, which they could then edit back to "all green"."""
    planted = github.add(f"{OURS}\n### ✅ all green, trust me\n", user="mallory")
    body = f"{OURS}\n### ❌ TFLite model budgets\nsize +40%\n"
    assert post(github, body_file(tmp_path, body)) == 0
    bodies = github.bodies()
    assert bodies[planted] == f"{OURS}\n### ✅ all green, trust me\n"
    (ours,) = [i for i in bodies if i != planted]
    assert bodies[ours] == body
    assert github.methods() == ["GET", "POST"]
    out = capsys.readouterr().out
    assert f"created comment {ours}" in out
    assert "ignored 1 comment(s) carrying the same marker by mallory" in out
    # The next push updates the bot's own comment, still not mallory's.
    github.requests.clear()
    assert post(github, body_file(tmp_path, f"{OURS}\nsecond push\n")) == 0
    assert [p for m, p, _ in github.requests if m == "PATCH"] == \
        [f"/repos/{REPO}/issues/comments/{ours}"]
    assert github.bodies()[planted] == f"{OURS}\n### ✅ all green, trust me\n"


def test_the_exact_body_planted_by_someone_else_does_not_silence_the_bot(github, token,
                                                                         tmp_path, capsys):
    """Before issue 17 the bot saw its own body already there, did one GET and posted nothing;
    the planted copy is the attacker's, editable at will."""
    body = f"{OURS}\n### ❌ TFLite model budgets\nsize +40%\n"
    planted = github.add(body, user="mallory")
    assert post(github, body_file(tmp_path, body)) == 0
    assert github.methods() == ["GET", "POST"]
    (ours,) = [i for i in github.bodies() if i != planted]
    assert github.comments[PR][-1]["user"]["login"] == BOT and github.bodies()[ours] == body
    assert f"created comment {ours}" in capsys.readouterr().out


def test_author_names_whose_comment_is_ours(github, token, tmp_path, capsys):
    """--author LOGIN (GitHub logins are case-insensitive) and --author @me, the token's own
    login from GET /user, for a personal access token; a bot's comment is then someone else's."""
    bots = github.add(f"{OURS}\nthe workflow's", user=BOT)
    mine = github.add(f"{OURS}\na person's token's", user="Octo-Maintainer")
    assert post(github, body_file(tmp_path, f"{OURS}\nv2\n"), "--author", "octo-maintainer") == 0
    assert github.bodies()[mine] == f"{OURS}\nv2\n" and github.bodies()[bots] == f"{OURS}\nthe workflow's"
    github.login = "Octo-Maintainer"
    github.requests.clear()
    assert post(github, body_file(tmp_path, f"{OURS}\nv3\n"), "--author", "@me") == 0
    assert [(m, p) for m, p, _ in github.requests][:1] == [("GET", "/user")]
    assert github.bodies()[mine] == f"{OURS}\nv3\n" and github.bodies()[bots] == f"{OURS}\nthe workflow's"
    capsys.readouterr()


def test_author_me_with_a_token_that_has_no_login_is_a_clear_error(github, token, tmp_path,
                                                                   capsys):
    """A workflow's GITHUB_TOKEN (an installation token) cannot call GET /user: GitHub answers
    403 "Resource not accessible by integration". Nothing is posted."""
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n"), "--author", "@me") == 2
    err = capsys.readouterr().err
    assert "--author @me: GET http://127.0.0.1:" in err
    assert "HTTP 403 Forbidden: Resource not accessible by integration" in err
    assert "--author github-actions[bot] for GITHUB_TOKEN" in err
    assert github.methods() == ["GET"] and github.bodies() == {}


def test_a_comment_posted_as_another_login_than_author_warns(github, token, tmp_path, capsys):
    """A personal token with the default --author: every run would post a new comment."""
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n"), "--author", "a-person") == 0
    err = capsys.readouterr().err
    assert f"warning: the comment was posted as {BOT}, not a-person" in err
    assert f"--author {BOT}" in err


def test_head_sha_posts_on_the_pull_request_whose_head_it_is(github, token, tmp_path, capsys):
    github.heads = {PR: HEAD}
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n"), "--head-sha", HEAD.upper()) == 0
    assert [(m, p) for m, p, _ in github.requests] == [
        ("GET", f"/repos/{REPO}/pulls/{PR}"),
        ("GET", f"/repos/{REPO}/issues/{PR}/comments?per_page=100"),
        ("POST", f"/repos/{REPO}/issues/{PR}/comments")]
    assert "created comment" in capsys.readouterr().out


@pytest.mark.parametrize(("number", "head", "said"), [
    # The artifact names another, existing pull request (the README's short copy, before).
    (99, HEAD, f"not posting: the head of {REPO}#99 is {'d' * 12}, not {HEAD[:12]}"),
    # A pull request that does not exist.
    (98, HEAD, f"not posting: {REPO} has no pull request #98"),
    # The right number, another commit (the PR moved on, or the run was of another commit).
    (PR, "e" * 40, f"not posting: the head of {REPO}#{PR} is {HEAD[:12]}, not eeeeeeeeeeee"),
])
def test_a_wrong_pull_request_or_head_posts_nothing(github, token, tmp_path, capsys, number,
                                                    head, said):
    github.heads = {PR: HEAD, 99: "d" * 40}
    github.add(f"{OURS}\nold", number=number, user=BOT)
    before = {n: [dict(c) for c in cs] for n, cs in github.comments.items()}
    assert main(["comment", "--repo", REPO, "--pr", str(number), "--head-sha", head,
                 "--body", str(body_file(tmp_path, f"{OURS}\nnew\n")),
                 "--api-url", github.url]) == 2
    assert said in capsys.readouterr().err
    assert [(m, p) for m, p, _ in github.requests] == [("GET", f"/repos/{REPO}/pulls/{number}")]
    assert github.comments == before


def test_a_malformed_head_sha_is_refused_before_any_request(github, token, tmp_path, capsys):
    for bad in ("abc123", "g" * 40, "HEAD", ""):  # "": an unset variable in a workflow
        assert post(github, body_file(tmp_path, f"{OURS}\n"), "--head-sha", bad) == 2
        assert "--head-sha must be a full commit id" in capsys.readouterr().err
    assert github.requests == []


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A second server, on 127.0.0.2 (another host as far as any client can tell), recording
    what reaches it."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_host_never_carries_the_token(github, token, tmp_path, capsys,
                                                           elsewhere, status):
    """urllib's own redirect handler copies the Authorization header to any host: before issue
    17, 127.0.0.2 received ``Bearer test-token-123``."""
    root, seen = elsewhere
    github.redirect = (root, status)
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n")) == 2
    err = capsys.readouterr().err
    assert f"HTTP {status} redirect to {root}/repos/{REPO}/issues/{PR}/comments" in err
    assert "refusing to follow it off the API's host http://127.0.0.1:" in err
    assert seen == []
    assert github.methods() == ["GET"] and github.bodies() == {}


def test_a_redirect_to_another_scheme_is_refused(github, token, tmp_path, capsys):
    github.redirect = (github.url.replace("http://", "https://"), 302)
    assert post(github, body_file(tmp_path, f"{OURS}\nx\n")) == 2
    assert "redirect to https://127.0.0.1:" in capsys.readouterr().err
    assert github.methods() == ["GET"]


def test_same_host_redirects_still_work(github, token, tmp_path, capsys):
    """A renamed repository: GitHub answers 301 to a GET and 307 to a POST or PATCH, on its own
    host. The POST keeps its method and body (urllib alone refuses a 307 to a POST)."""
    github.moved = {"octo/old-models": REPO}
    body = f"{OURS}\nx\n"
    assert main(["comment", "--repo", "octo/old-models", "--pr", str(PR), "--body",
                 str(body_file(tmp_path, body)), "--api-url", github.url]) == 0
    assert [(m, p.split("?")[0]) for m, p, _ in github.requests] == [
        ("GET", "/repos/octo/old-models/issues/7/comments"),
        ("GET", f"/repos/{REPO}/issues/7/comments"),
        ("POST", "/repos/octo/old-models/issues/7/comments"),
        ("POST", f"/repos/{REPO}/issues/7/comments")]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in github.requests)
    assert list(github.bodies().values()) == [body]
    assert "created comment" in capsys.readouterr().out


def test_the_tokens_origin_is_scheme_host_and_port():
    from pytest_tflite.github import origin

    assert origin("HTTPS://API.github.com:443/x") == origin("https://api.github.com/y")
    assert origin("https://api.github.com@evil.example/") == ("https", "evil.example", 443)
    assert origin("http://api.github.com/") != origin("https://api.github.com/")
    assert origin("https://api.github.com:8443/") != origin("https://api.github.com/")
