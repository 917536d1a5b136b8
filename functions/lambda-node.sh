#!/bin/sh
# The functions' exec wrapper (AWS_LAMBDA_EXEC_WRAPPER in serverless.yml): Lambda runs it with the runtime's
# own start command ("$1" is node, then node's arguments and the runtime's script) and it starts that node with
# the V8 flags below.
#   --single-threaded-gc (NODE_OPTIONS refuses it): no background GC threads. Every segment byte passes through
#   fresh Buffers (the HTTP parser's copies, the cipher's outputs), which start a full collection every few tens
#   of MiB; run in background threads, those collections cost 1.2–2.4 s of CPU per GiB more than run on the
#   main thread (1 GiB transfers), and a function at the default memory size has less than one vCPU for all of
#   them (docs/DEVELOPMENT.md, "The garbage collector, off its background threads").
#   --expose-gc: lets the upload's sealer ask for a scavenge every 4 MiB of the cipher's output Buffers
#   (src/core/youngGarbage.ts), which V8 otherwise lets pile up by tens of MiB: 30–45 MiB off its peak memory.
node="$1"
shift
exec "$node" --single-threaded-gc --expose-gc "$@"
