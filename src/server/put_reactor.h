// Serves one upload (UserService.CreateObject / UpdateObject) on gRPC's callback API, so that a
// stalled client costs buffers but no thread.
//
// Commit rule (the reason this is not a plain read loop): an upload is committed only when the
// client finished sending, never after a cancel, a deadline, a broken connection, a malformed
// message or an idle timeout. "Finished" means: the header's `size` bytes arrived, or the client
// sent the finish message, or (for an upload that declares neither) the client half-closed the
// stream and no cancellation followed within ServerOptions::upload_settle. The last case exists
// because some HTTP/2 clients (Node's, hence grpc-js) half-close a stream and only then reset it
// when they cancel: measured on loopback, the reset arrived 0.3-9 ms after the half-close, so a
// server that trusted the half-close committed a cancelled upload's first part. Until the server
// sends the storage service its finish message (or, for an upload small enough to be held in
// memory, calls it to commit the whole upload) nothing can commit; the user's cancellation is
// propagated to the storage stream, so a cancel that arrives during the commit itself still stops
// a streamed one unless the storage node has already begun writing the commit. A version committed
// here is replicated even when the user's call ended meanwhile, so that its copies agree.
#pragma once

#include <grpcpp/grpcpp.h>

namespace mcos::server {

class ServerApp;

// Starts serving one upload. gRPC owns the returned reactor until its OnDone.
grpc::ServerReadReactor<grpc::ByteBuffer>* StartPut(ServerApp& app,
                                                    grpc::CallbackServerContext* context,
                                                    grpc::ByteBuffer* response, bool create);

}  // namespace mcos::server
