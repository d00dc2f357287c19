// Reading a socket together with the kernel's receive time of the bytes
// read (SO_TIMESTAMPNS): how long they waited unread in the socket. The
// HTTP server counts that wait toward a request's delay, and the paced load
// tool times answers by it instead of by when its loop got to them.
#ifndef CFREC_SERVER_RECEIVE_TIME_H_
#define CFREC_SERVER_RECEIVE_TIME_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace cfrec::server {

// Asks the kernel to stamp each segment received on `fd` with its receive
// time (SO_TIMESTAMPNS). False if the socket refuses.
bool EnableReceiveTimes(int fd);

// CLOCK_REALTIME in nanoseconds (the clock of the kernel's stamps).
int64_t RealTimeNs();

struct TimedRead {
  // What recvmsg(2) returned: bytes read, 0 when the peer closed, -1 with
  // errno set on an error (EAGAIN / EWOULDBLOCK when there was nothing).
  ssize_t bytes = -1;
  // How long before `now_real_ns` the kernel received the data read (on
  // TCP, its last segment); empty when the kernel gave no stamp or the wait
  // is not in (0, max_age) (the stamp is on the real-time clock, which may
  // step).
  std::optional<std::chrono::nanoseconds> waited;
};

// One recvmsg(2) of up to `size` bytes from `fd` into `data` with `flags`.
// `now_real_ns` is "now" on CLOCK_REALTIME (a caller that reads many
// sockets per wake-up reads it once); empty reads the clock after the call.
TimedRead ReadWithReceiveTime(int fd, void* data, size_t size, int flags,
                              std::optional<int64_t> now_real_ns,
                              std::chrono::nanoseconds max_age);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_RECEIVE_TIME_H_
