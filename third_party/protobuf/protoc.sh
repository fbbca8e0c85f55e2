#!/bin/sh
# Debian's protoc (protobuf-compiler 3.21), matching libprotobuf-dev.
exec /usr/bin/protoc "$@"
