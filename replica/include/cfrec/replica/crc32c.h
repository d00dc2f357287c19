// CRC32C (Castagnoli), the checksum Kafka's own record batches use; here it
// guards each chunk of a model image and each whole image.
#ifndef CFREC_REPLICA_CRC32C_H_
#define CFREC_REPLICA_CRC32C_H_

#include <cstdint>
#include <string_view>

namespace cfrec::replica {

// CRC32C of `data`, continuing from `crc` (0 to start).
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace cfrec::replica

#endif  // CFREC_REPLICA_CRC32C_H_
