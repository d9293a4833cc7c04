#!/usr/bin/python3
"""A loopback stand-in for the Hugging Face Hub, for tests/hub.t and the README's examples (docs/hub.md).

    hub_server.py --port-file FILE [--log FILE] [--token T] [--delay S] REPO=DIR[,FLAG...] ...

Serves each model folder DIR as the Hub model REPO ("org/name") on 127.0.0.1, on a free port written to
FILE, with the endpoints huggingface_hub uses:

  GET  /api/models/REPO/revision/REV   {"id", "sha", "siblings": [{"rfilename"}]}; REV is main, v1 or the commit
  GET  /api/models/REPO/tree/REV       [{"type", "path", "oid", "size", "lfs"}] (what @huggingface/hub lists)
  POST /api/models/REPO/paths-info/REV the same for the {"paths": [...]} asked for
  HEAD|GET /REPO/resolve/REV/FILE      small files directly, with ETag = their git blob id; LFS files (weights,
                                       *.model, *.msgpack, *.h5, *.onnx, *.bin) as a 302 to /cdn/SHA256 (an
                                       absolute URL, as the Hub's CDN), with X-Linked-Etag = sha256 and
                                       X-Linked-Size; every answer carries X-Repo-Commit
  GET  /cdn/SHA256[/corrupt|/slow]     the bytes
  Range: bytes=A-B or bytes=A- is honoured (206) by the CDN and for small files

FLAGs: private (401 unless "Authorization: Bearer T"), gated (403 with X-Error-Code: GatedRepo), corrupt (the
CDN serves LFS files with one byte changed, so their sha256 no longer matches), slow (the CDN waits --delay
seconds before answering: the concurrency test), renamed-from=OLD (OLD answers
with relative redirects to REPO, as the Hub does for a renamed repo). An unknown repo is a 404 with
X-Error-Code: RepoNotFound, an unknown revision RevisionNotFound. Every request is appended to the log as
"METHOD PATH auth=none|ok|wrong range=..." (never the token itself). Loopback only; nothing here reaches
the network.
"""
import argparse
import hashlib
import json
import http.server
import os
import socketserver
import sys
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".msgpack", ".h5", ".onnx", ".ot", ".pt")


class Repo:
    def __init__(self, name, folder, flags):
        self.name, self.folder, self.flags = name, folder, flags
        self.files = {}   # relative path -> bytes
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for n in sorted(names):
                path = os.path.join(root, n)
                rel = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as f:
                    self.files[rel] = f.read()
        h = hashlib.sha1()
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + hashlib.sha256(self.files[rel]).digest())
        self.commit = h.hexdigest()

    def lfs(self, rel):
        return rel.endswith(LFS_SUFFIXES)


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-test"

    def log_message(self, fmt, *args):   # requests go to our own log, not stderr
        pass

    def log_request_line(self):
        auth = self.headers.get("Authorization")
        state = "none" if auth is None else ("ok" if auth == "Bearer " + (self.server.token or "\0") else "wrong")
        with self.server.log_lock, open(self.server.log_path, "a") as log:
            log.write("%s %s auth=%s range=%s\n" % (self.command, self.path, state,
                                                    self.headers.get("Range", "-")))

    def send(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code=None, message=""):
        headers = [("Content-Type", "text/plain")]
        if code:
            headers.append(("X-Error-Code", code))
        if message:
            headers.append(("X-Error-Message", message))
        self.send(status, headers, (message or "error").encode())

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.handle_any()

    def authorized(self, repo):
        if "gated" in repo.flags:
            if self.headers.get("Authorization") != "Bearer " + (self.server.token or "\0"):
                self.error(403, "GatedRepo", "Access to this model is restricted")
                return False
        if "private" in repo.flags:
            if self.headers.get("Authorization") != "Bearer " + (self.server.token or "\0"):
                self.error(401, None, "Invalid credentials")
                return False
        return True

    def find_repo(self, parts):
        """parts: path segments; returns (repo, rest, renamed_from) for the longest matching repo id."""
        for n in (2, 1):
            name = "/".join(parts[:n])
            if name in self.server.repos:
                return self.server.repos[name], parts[n:], None
            if name in self.server.renames:
                return self.server.repos[self.server.renames[name]], parts[n:], name
        return None, parts, None

    def handle_any(self):
        self.log_request_line()
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        if parts[:1] == ["cdn"] and len(parts) in (2, 3):
            return self.cdn(parts[1], parts[2] if len(parts) == 3 else "")
        api = parts[:2] == ["api", "models"]
        repo, rest, old = self.find_repo(parts[2:] if api else parts)
        if repo is None:
            return self.error(404, "RepoNotFound", "Repository not found")
        if old is not None:   # a renamed repo: a relative redirect to the new name
            new_path = url.path.replace("/" + old + "/", "/" + repo.name + "/", 1)
            return self.send(307, [("Location", new_path)])
        if not self.authorized(repo):
            return
        if api:
            if len(rest) < 2 or rest[0] not in ("revision", "tree", "paths-info"):
                return self.error(404, None, "Not found")
            if rest[1] not in ("main", "v1", repo.commit):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rest[1])
            if rest[0] == "revision":
                answer = {"_id": repo.commit[:24], "id": repo.name, "sha": repo.commit,
                          "siblings": [{"rfilename": f} for f in sorted(repo.files)]}
            elif rest[0] == "tree":
                dirs = sorted({d for f in repo.files for d in self.parents(f)})
                answer = [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in dirs]
                answer += [self.entry(repo, f) for f in sorted(repo.files)]
            else:
                paths = json.loads(getattr(self, "body", b"") or b"{}").get("paths", [])
                answer = [self.entry(repo, f) for f in paths if f in repo.files]
            return self.send(200, [("Content-Type", "application/json")], json.dumps(answer).encode())
        if len(rest) < 3 or rest[0] != "resolve":
            return self.error(404, None, "Not found")
        rev, rel = rest[1], "/".join(rest[2:])
        if rev not in ("main", "v1", repo.commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        if rel not in repo.files:
            return self.send(404, [("X-Error-Code", "EntryNotFound"), ("X-Repo-Commit", repo.commit)],
                             b"Entry not found")
        data = repo.files[rel]
        if repo.lfs(rel):
            sha = hashlib.sha256(data).hexdigest()
            self.server.blobs[sha] = data
            kind = "/corrupt" if "corrupt" in repo.flags else "/slow" if "slow" in repo.flags else ""
            pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha.encode(),
                                                                                               len(data))
            host = "http://127.0.0.1:%d" % self.server.server_address[1]
            return self.send(302, [("Location", host + "/cdn/" + sha + kind), ("X-Repo-Commit", repo.commit),
                                   ("ETag", '"%s"' % git_blob_id(pointer)), ("X-Linked-Etag", '"%s"' % sha),
                                   ("X-Linked-Size", str(len(data)))])
        self.send_bytes(data, [("X-Repo-Commit", repo.commit), ("ETag", '"%s"' % git_blob_id(data))])

    @staticmethod
    def parents(path):
        parts = path.split("/")[:-1]
        return ["/".join(parts[:i + 1]) for i in range(len(parts))]

    @staticmethod
    def entry(repo, rel):
        data = repo.files[rel]
        e = {"type": "file", "path": rel, "oid": git_blob_id(data), "size": len(data)}
        if repo.lfs(rel):
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def send_bytes(self, data, headers):
        """200 with the bytes, or 206 with the part a "Range: bytes=A-[B]" asks for."""
        headers = headers + [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        rng = self.headers.get("Range", "")
        if not rng.startswith("bytes="):
            return self.send(200, headers, data)
        first, _, last = rng[6:].partition("-")
        start = int(first)
        end = min(int(last), len(data) - 1) if last else len(data) - 1
        if start >= len(data) or end < start:
            return self.send(416, [("Content-Range", "bytes */%d" % len(data))])
        return self.send(206, headers + [("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))],
                         data[start:end + 1])

    def cdn(self, sha, kind):
        if sha not in self.server.blobs:
            return self.error(404, None, "no such object")
        if kind == "slow":
            time.sleep(self.server.delay)
        data = self.server.blobs[sha]
        if kind == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_bytes(data, [("ETag", '"%s"' % sha)])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("--token")
    ap.add_argument("--delay", type=float, default=0.5)
    ap.add_argument("repos", nargs="+", metavar="REPO=DIR[,FLAG...]")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.repos, srv.renames, srv.blobs = {}, {}, {}
    srv.token, srv.delay, srv.log_path, srv.log_lock = a.token, a.delay, a.log, threading.Lock()
    for spec in a.repos:
        name, _, rest = spec.partition("=")
        folder, *flags = rest.split(",")
        repo = Repo(name, folder, [f for f in flags if not f.startswith("renamed-from=")])
        srv.repos[name] = repo
        for f in flags:
            if f.startswith("renamed-from="):
                srv.renames[f.split("=", 1)[1]] = name
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
