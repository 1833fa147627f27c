#!/usr/bin/env python3
"""Write an OCI layout (tag 2) holding a trivy-db-shaped artifact whose layer is a real
tar.gz: `trivy.db` of SIZE uncompressed bytes of BoltDB-like content (small JSON
vulnerability records with local repetition; gzip -6 shrinks it about 8:1), then
`metadata.json`, in that order, like the upstream db.tar.gz. Deterministic.

The fixture generator's `big-layer` writes incompressible bytes that are not a tar.gz,
so `sync` gives up reading metadata.json from it after the first block. This layer makes
`sync` do what it does on the real trivy-db: inflate the whole layer while copying it.

usage: db-layer.py DIR SIZE_BYTES   (prints "DIR:2 sha256:<manifest> (layer N bytes, trivy.db M bytes)")
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

LAYER_MEDIA_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
ARTIFACT_TYPE = "application/vnd.aquasec.trivy.config.v1+json"
EMPTY = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY).hexdigest()
PAGE = 64 * 1024


class BoltLike(io.RawIOBase):
    """`size` bytes of pages built from a few dozen records each, lightly perturbed."""

    def __init__(self, size):
        self.left = size
        self.rnd = random.Random(1)
        rnd = self.rnd
        words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(3, 10))) for _ in range(600)]
        sev = ["LOW", "MEDIUM", "HIGH", "CRITICAL", "UNKNOWN"]
        self.recs = []
        for _ in range(3000):
            r = {
                "VulnerabilityID": "CVE-%d-%d" % (rnd.randint(1999, 2025), rnd.randint(1000, 99999)),
                "PkgName": rnd.choice(words) + "-" + rnd.choice(words),
                "FixedVersion": "%d.%d.%d" % (rnd.randint(0, 9), rnd.randint(0, 30), rnd.randint(0, 99)),
                "Severity": rnd.choice(sev),
                "Title": " ".join(rnd.choice(words) for _ in range(rnd.randint(5, 15))),
                "References": ["https://%s.example/%s/%d" % (rnd.choice(words), rnd.choice(words), rnd.randint(1, 10**6))
                               for _ in range(rnd.randint(1, 4))],
            }
            self.recs.append(json.dumps(r, separators=(",", ":")).encode())
        self.buf = b""

    def readable(self):
        return True

    def _page(self):
        rnd = self.rnd
        local = [rnd.choice(self.recs) for _ in range(60)]
        page = bytearray()
        while len(page) < PAGE:
            rec = bytearray(rnd.choice(local))
            for _ in range(2):
                rec[rnd.randrange(len(rec))] = rnd.randrange(48, 58)
            page += rec
        return bytes(page)

    def readinto(self, b):
        if self.left <= 0:
            return 0
        while len(self.buf) < len(b) and len(self.buf) < self.left:
            self.buf += self._page()
        n = min(len(b), self.left, len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        self.left -= n
        return n


class Hashing(io.RawIOBase):
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)


def write_blob(blobs, data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    out, size = sys.argv[1], int(sys.argv[2])
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    partial = os.path.join(blobs, ".layer.partial")
    meta = json.dumps({"Version": 2, "NextUpdate": "2026-01-02T00:00:00Z", "UpdatedAt": "2026-01-01T00:00:00Z",
                       "DownloadedAt": "0001-01-01T00:00:00Z"}).encode()
    with open(partial, "wb") as raw:
        hw = Hashing(raw)
        with gzip.GzipFile(fileobj=hw, mode="wb", compresslevel=6, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                for name, length, src in (("trivy.db", size, io.BufferedReader(BoltLike(size), PAGE)),
                                          ("metadata.json", len(meta), io.BytesIO(meta))):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = length, 0o644, 1767225600
                    tar.addfile(info, src)
    layer_hex, layer_size = hw.h.hexdigest(), hw.n
    os.replace(partial, os.path.join(blobs, layer_hex))
    write_blob(blobs, EMPTY)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": "sha256:" + layer_hex, "size": layer_size,
                    "annotations": {"org.opencontainers.image.title": "db.tar.gz"}}],
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    mbytes = json.dumps(manifest, separators=(",", ":")).encode()
    mdigest = write_blob(blobs, mbytes)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
                            "size": len(mbytes), "annotations": {"org.opencontainers.image.ref.name": "2"},
                            "artifactType": ARTIFACT_TYPE}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    print("%s:2 %s (layer %d bytes, trivy.db %d bytes)" % (out, mdigest, layer_size, size))


if __name__ == "__main__":
    main()
