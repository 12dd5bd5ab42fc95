#!/usr/bin/env python3
"""Extract Dapr's wire contract from the official Python SDK wheel.

Usage: extract-dapr-protos.py <unzipped dapr wheel dir> <out.fds.bin>

The official `dapr` wheel on PyPI carries the compiled protobuf descriptors of
the runtime API (dapr.proto.runtime.v1, common.v1, app callbacks) and of the
durable-task service the workflow SDKs use. This script loads those modules
without running the SDK's package initialisers (which import aiohttp and more)
and writes one FileDescriptorSet, dependencies first. The output is committed
as crates/mecha-proto/proto/dapr.fds.bin; crates/mecha-proto/build.rs turns it
into Rust code, so no protoc is needed anywhere.

Needs: protobuf (from PyPI). Re-run when Dapr's API moves:
    pip download dapr==<version> --no-deps && unzip it && run this.
"""
import importlib
import os
import sys
import types

from google.protobuf import descriptor_pb2

root, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)

# Register the SDK's packages as bare namespaces so importing the generated
# *_pb2 modules does not execute the SDK's own __init__ files.
PACKAGES = [
    "dapr", "dapr.proto", "dapr.proto.common", "dapr.proto.common.v1",
    "dapr.proto.runtime", "dapr.proto.runtime.v1",
    "dapr.ext", "dapr.ext.workflow", "dapr.ext.workflow._durabletask",
    "dapr.ext.workflow._durabletask.internal",
]
for name in PACKAGES:
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, *name.split("."))]
    sys.modules[name] = module

ENTRY_POINTS = [
    "dapr.proto.runtime.v1.dapr_pb2",
    "dapr.proto.runtime.v1.appcallback_pb2",
    "dapr.ext.workflow._durabletask.internal.orchestrator_service_pb2",
]

ordered, visited = [], set()


def visit(file_descriptor):
    if file_descriptor.name in visited:
        return
    visited.add(file_descriptor.name)
    for dep in file_descriptor.dependencies:
        visit(dep)
    ordered.append(file_descriptor)


for entry in ENTRY_POINTS:
    visit(importlib.import_module(entry).DESCRIPTOR)

fds = descriptor_pb2.FileDescriptorSet()
for file_descriptor in ordered:
    file_descriptor.CopyToProto(fds.file.add())
with open(out, "wb") as handle:
    handle.write(fds.SerializeToString())
print(f"{len(ordered)} files written to {out}")
