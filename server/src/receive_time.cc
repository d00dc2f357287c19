#include "cfrec/server/receive_time.h"

#include <sys/socket.h>
#include <time.h>

#include <cstring>

namespace cfrec::server {

bool EnableReceiveTimes(int fd) {
  const int on = 1;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) == 0;
}

int64_t RealTimeNs() {
  timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  return real.tv_sec * 1'000'000'000LL + real.tv_nsec;
}

TimedRead ReadWithReceiveTime(int fd, void* data, size_t size, int flags,
                              std::optional<int64_t> now_real_ns,
                              std::chrono::nanoseconds max_age) {
  iovec iov{data, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  TimedRead read;
  read.bytes = recvmsg(fd, &msg, flags);
  if (read.bytes <= 0) return read;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_TIMESTAMPNS) {
      continue;
    }
    timespec stamp;
    std::memcpy(&stamp, CMSG_DATA(c), sizeof(stamp));
    const int64_t now = now_real_ns.has_value() ? *now_real_ns : RealTimeNs();
    const int64_t ago_ns =
        now - (stamp.tv_sec * 1'000'000'000LL + stamp.tv_nsec);
    if (ago_ns > 0 && ago_ns < max_age.count()) {
      read.waited = std::chrono::nanoseconds(ago_ns);
    }
  }
  return read;
}

}  // namespace cfrec::server
