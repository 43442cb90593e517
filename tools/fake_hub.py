#!/usr/bin/env python3
"""A loopback fake of the Hugging Face Hub for Glimpse's tests (Python standard library only).

Serves model directories as repos with the endpoints and headers huggingface_hub 2.x relies on:
  GET  /api/models/{repo}/revision/{rev}          {"id", "sha", "siblings"}; X-Error-Code on errors
  GET  /api/models/{repo}/tree/{rev}?recursive=.. paginated by `Link: <...>; rel="next"`
  HEAD /{repo}/resolve/{rev}/{file}                non-LFS: 200 + ETag (git blob sha1); LFS: 302 to the CDN
                                                   (another origin) with X-Linked-Etag (sha256), X-Linked-Size
  GET  /{repo}/resolve/{rev}/{file}                the same; text files gzip-encoded when accepted
  GET  CDN /lfs/{sha256}?sig=..                     Range -> 206 + Content-Range
Errors as the Hub sends them: RepoNotFound (401 anonymous, 404 with a token), RevisionNotFound,
EntryNotFound, GatedRepo (401 without a token, 403 with a wrong one).

Faults for tests: --drop-after N (the first CDN GET of each blob sends N bytes of the body, then
closes the connection), --corrupt FILE (the CDN serves FILE with one byte flipped), --claim-size
FILE=BYTES (the HEAD advertises that size). Every request is
logged as one JSON line to --log (method, server, path, range, whether a token came with it).

Why Python: the test needs gzip (zlib has no Swift module here) and a complete HTTP/1.1 server;
http.server does both in a page, and CI has python3 (no third-party package is imported).

Prints "READY <hub-url> <cdn-url>" on stdout once both servers listen.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".msgpack", ".h5")


class Repo:
    def __init__(self, repo_id, directory):
        self.id = repo_id
        self.files = {}
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            data = open(path, "rb").read()
            lfs = name.endswith(LFS_SUFFIXES)
            entry = {
                "data": data,
                "size": len(data),
                "sha1": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                "lfs": lfs,
            }
            if lfs:
                entry["sha256"] = hashlib.sha256(data).hexdigest()
                pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (entry["sha256"], len(data))
                entry["pointer_sha1"] = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer.encode()).hexdigest()
                entry["pointer_size"] = len(pointer)
            self.files[name] = entry
        listing = "".join("%s %s\n" % (n, f["sha1"]) for n, f in self.files.items())
        self.commit = hashlib.sha1(("commit " + repo_id + "\n" + listing).encode()).hexdigest()
        self.refs = {"main": self.commit, "v1.0": self.commit}

    def resolve(self, revision):
        if revision in self.refs:
            return self.refs[revision]
        if revision == self.commit:
            return revision
        return None


class State:
    def __init__(self, args):
        self.repos = {}
        for spec in args.repo:
            repo_id, directory = spec.split("=", 1)
            self.repos[repo_id] = Repo(repo_id, directory)
        self.aliases = dict(spec.split("=", 1) for spec in args.alias)
        self.gated = set(args.gated)
        self.token = args.token
        self.page_size = args.page_size
        self.drop_after = args.drop_after
        self.corrupt = set(args.corrupt)
        self.cdn_hop = args.cdn_hop
        self.claimed_sizes = dict((k, int(v)) for k, v in (spec.split("=", 1) for spec in args.claim_size))
        self.dropped = set()
        self.blobs = {}
        for repo in self.repos.values():
            for name, f in repo.files.items():
                if f["lfs"]:
                    data = f["data"]
                    if name in self.corrupt:
                        data = bytearray(data)
                        data[len(data) // 2] ^= 0xFF
                        data = bytes(data)
                    self.blobs[f["sha256"]] = data
        self.lock = threading.Lock()
        self.log = open(args.log, "a") if args.log else None
        self.hub_url = self.cdn_url = ""

    def record(self, **fields):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(fields) + "\n")
                self.log.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    server_name_ = "hub"

    def log_message(self, *args):
        pass

    def token(self):
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def reply(self, status, headers=(), body=b""):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code=None, message=None, commit=None):
        headers = [("Content-Type", "application/json")]
        if code:
            headers.append(("X-Error-Code", code))
        if message:
            headers.append(("X-Error-Message", message))
        if commit:
            headers.append(("X-Repo-Commit", commit))
        self.reply(status, headers, json.dumps({"error": message or code or "error"}).encode())

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        st = self.state
        parsed = urllib.parse.urlsplit(self.path)
        st.record(server=self.server_name_, method=self.command, path=parsed.path, query=parsed.query,
                  range=self.headers.get("Range"), token=self.token() is not None,
                  accept_encoding=self.headers.get("Accept-Encoding"))
        if self.server_name_ == "cdn":
            return self.cdn(parsed)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/")[1:]]
        if len(parts) >= 5 and parts[0] == "api" and parts[1] == "models":
            repo_id = parts[2] + "/" + parts[3]
            if repo_id in self.state.aliases:
                # A renamed repo: a relative redirect that stays on the Hub.
                target = "/api/models/%s/%s" % (self.state.aliases[repo_id], "/".join(urllib.parse.quote(p, safe="") for p in parts[4:]))
                return self.reply(307, [("Location", target + ("?" + parsed.query if parsed.query else ""))])
            return self.api(repo_id, parts[4], parts[5:], urllib.parse.parse_qs(parsed.query))
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id = parts[0] + "/" + parts[1]
            return self.resolve(repo_id, parts[3], "/".join(parts[4:]))
        self.error(404, message="no such endpoint")

    def repo_or_error(self, repo_id):
        repo = self.state.repos.get(repo_id)
        if repo is None:
            # The Hub answers 401 to an anonymous request, 404 to an authenticated one.
            self.error(404 if self.token() else 401, "RepoNotFound", "Repository not found")
        return repo

    def api(self, repo_id, kind, rest, query):
        repo = self.repo_or_error(repo_id)
        if repo is None:
            return
        revision = rest[0] if rest else "main"
        commit = repo.resolve(revision)
        if commit is None:
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        if kind == "revision":
            body = {"id": repo.id, "modelId": repo.id, "sha": commit,
                    "siblings": [{"rfilename": n} for n in repo.files]}
            return self.reply(200, [("Content-Type", "application/json")], json.dumps(body).encode())
        if kind == "tree":
            items = []
            for name, f in repo.files.items():
                item = {"type": "file", "oid": f["pointer_sha1"] if f["lfs"] else f["sha1"], "size": f["size"], "path": name}
                if f["lfs"]:
                    item["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": f["pointer_size"]}
                items.append(item)
            start = int(query.get("cursor", ["0"])[0])
            page = items[start:start + self.state.page_size]
            headers = [("Content-Type", "application/json")]
            if start + self.state.page_size < len(items):
                q = dict((k, v[0]) for k, v in query.items())
                q["cursor"] = str(start + self.state.page_size)
                link = "%s/api/models/%s/tree/%s?%s" % (self.state.hub_url, repo.id, urllib.parse.quote(revision, safe=""), urllib.parse.urlencode(q))
                headers.append(("Link", '<%s>; rel="next"' % link))
            return self.reply(200, headers, json.dumps(page).encode())
        self.error(404, message="no such endpoint")

    def resolve(self, repo_id, revision, filename):
        st = self.state
        if repo_id in st.aliases:
            # A renamed repo: a relative redirect that stays on the Hub.
            target = "/%s/resolve/%s/%s" % (st.aliases[repo_id], urllib.parse.quote(revision, safe=""), urllib.parse.quote(filename))
            return self.reply(307, [("Location", target)])
        repo = self.repo_or_error(repo_id)
        if repo is None:
            return
        if repo_id in st.gated and self.token() != st.token:
            return self.error(403 if self.token() else 401, "GatedRepo", "Access to model %s is restricted" % repo_id)
        commit = repo.resolve(revision)
        if commit is None:
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        f = repo.files.get(filename)
        if f is None:
            return self.error(404, "EntryNotFound", "Entry not found", commit=commit)
        if f["lfs"]:
            location = "%s/lfs/%s?X-Amz-Signature=%s" % (st.cdn_url, f["sha256"], f["sha256"][:16])
            return self.reply(302, [("Location", location), ("X-Repo-Commit", commit),
                                    ("X-Linked-Etag", '"%s"' % f["sha256"]),
                                    ("X-Linked-Size", str(st.claimed_sizes.get(filename, f["size"]))),
                                    ("ETag", '"%s"' % f["pointer_sha1"]), ("Content-Length", "0")])
        headers = [("X-Repo-Commit", commit), ("ETag", '"%s"' % f["sha1"]), ("Content-Type", "text/plain; charset=utf-8")]
        body = f["data"]
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        self.reply(200, headers, body)

    def cdn(self, parsed):
        st = self.state
        parts = parsed.path.split("/")
        if len(parts) != 3 or parts[1] != "lfs" or parts[2] not in st.blobs or "X-Amz-Signature" not in parsed.query:
            return self.reply(403, [("Content-Type", "text/plain")], b"AccessDenied")
        sha = parts[2]
        if st.cdn_hop and "hop=1" not in parsed.query:
            # A storage redirect: the CDN sends the client on to another absolute URL (here, itself).
            return self.reply(302, [("Location", "%s/lfs/%s?%s&hop=1" % (st.cdn_url, sha, parsed.query))])
        data = st.blobs[sha]
        start = 0
        status = 200
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"), ("ETag", '"%s"' % sha)]
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(data):
                return self.reply(416, [("Content-Range", "bytes */%d" % len(data))])
            status = 206
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data))))
        body = data[start:]
        headers.append(("Content-Length", str(len(body))))
        if self.command == "GET" and st.drop_after is not None:
            with st.lock:
                drop = sha not in st.dropped and len(body) > st.drop_after
                if drop:
                    st.dropped.add(sha)
            if drop:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[:st.drop_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
        self.reply(status, headers, body)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", action="append", default=[], help="OWNER/NAME=DIRECTORY (repeatable)")
    p.add_argument("--alias", action="append", default=[], help="OLD/NAME=OWNER/NAME: resolve redirects relatively")
    p.add_argument("--gated", action="append", default=[], help="OWNER/NAME that needs --token")
    p.add_argument("--token", default="hf_fake_token")
    p.add_argument("--page-size", type=int, default=3)
    p.add_argument("--drop-after", type=int, default=None)
    p.add_argument("--corrupt", action="append", default=[], help="FILE served with one byte flipped")
    p.add_argument("--claim-size", action="append", default=[], help="FILE=BYTES advertised as X-Linked-Size")
    p.add_argument("--cdn-hop", action="store_true", help="the CDN redirects each GET once more, absolutely")
    p.add_argument("--log", default=None)
    args = p.parse_args()
    state = State(args)

    def serve(name):
        handler = type("H_" + name, (Handler,), {"state": state, "server_name_": name})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d" % server.server_address[1]

    state.hub_url = serve("hub")
    state.cdn_url = serve("cdn")
    print("READY %s %s" % (state.hub_url, state.cdn_url), flush=True)
    # Runs until stdin closes (the test ends) or the process is terminated.
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
