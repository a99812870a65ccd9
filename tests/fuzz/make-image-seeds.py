#!/usr/bin/env python3
"""Writes the image-archive fuzzer's seeds: the smallest docker-archive and OCI layout
tars that load (one layer holding one file), so the fuzzer starts from valid shapes."""
import gzip, hashlib, io, json, pathlib, sys, tarfile

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "seeds/image_archive")
out.mkdir(parents=True, exist_ok=True)


def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data):
    return hashlib.sha256(data).hexdigest()


layer = tar_of([("hello", b"hi\n")])
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}}).encode()
manifest = json.dumps([{"Config": sha(config) + ".json", "RepoTags": ["seed:1"], "Layers": ["l/layer.tar"]}]).encode()
(out / "docker-archive").write_bytes(tar_of([("manifest.json", manifest), (sha(config) + ".json", config),
                                             ("l/layer.tar", layer)]))

gz = gzip.compress(layer, mtime=0)
oci_manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": "sha256:" + sha(gz), "size": len(gz)}]}).encode()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + sha(oci_manifest), "size": len(oci_manifest),
                    "annotations": {"io.containerd.image.name": "seed:2"}}]}).encode()
(out / "oci-layout").write_bytes(tar_of([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                                         ("blobs/sha256/" + sha(oci_manifest), oci_manifest),
                                         ("blobs/sha256/" + sha(config), config), ("blobs/sha256/" + sha(gz), gz)]))
