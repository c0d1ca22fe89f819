#!/bin/sh
# Regenerates the Go code for the Danube protocol. The generator versions are
# pinned by the tool directives in go.mod; protoc comes from Debian's
# protobuf-compiler package (any protoc >= 3.15 understands proto3 optional).
set -eu
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
protoc \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	DanubeApi.proto SchemaRegistry.proto
