package config

import "google.golang.org/protobuf/proto"

func protoClone(m proto.Message) proto.Message { return proto.Clone(m) }
