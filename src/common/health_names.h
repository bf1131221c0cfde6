// Health service names beyond "" (the process) that MCOS processes report through grpc.health.v1.
#pragma once

namespace mcos::common {

// NOT_SERVING while a storage node refuses new data (its disk is under the free-space floor); ""
// stays SERVING meanwhile, since the node still reads and deletes.
inline constexpr char kStorageWritesHealth[] = "mcos.v1.StorageService/Writes";

}  // namespace mcos::common
