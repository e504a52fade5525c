// Package proto holds peco's plugin protocol (peco/plugin/v1/plugin.proto)
// and the command that regenerates its Go code (package pluginv1) and the
// Python code of the Python example plugin.
//
// Needs protoc (Debian: protobuf-compiler), protoc-gen-go and
// protoc-gen-go-grpc (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
// google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1) and, for Python,
// Debian's python3-grpc-tools.
package proto

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative peco/plugin/v1/plugin.proto
//go:generate /usr/bin/python3 -m grpc_tools.protoc -I . --python_out=../examples/numpy-loss --grpc_python_out=../examples/numpy-loss peco/plugin/v1/plugin.proto
