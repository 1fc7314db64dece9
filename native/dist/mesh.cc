#include "dist/mesh.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

namespace ignis::dist {
namespace {

using Clock = Mesh::Clock;
using Millis = std::chrono::milliseconds;
constexpr size_t kHeader = 24;  // seq, code, bytes: 8 little-endian bytes each

void put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = char((v >> (8 * i)) & 0xff);
}
uint64_t get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= uint64_t(uint8_t(p[i])) << (8 * i);
  return v;
}

int poll_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<Millis>(deadline - Clock::now()).count();
  return int(std::max<int64_t>(0, std::min<int64_t>(left, 1 << 30)));
}

void set_socket_options(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

// Blocking-with-deadline I/O for the handshake (sockets are non-blocking).
bool write_all(int fd, const std::string& data, Clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += size_t(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, poll_ms(deadline)) == 0) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool read_all(int fd, char* out, size_t bytes, Clock::time_point deadline) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = ::recv(fd, out + done, bytes - done, 0);
    if (n > 0) {
      done += size_t(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, poll_ms(deadline)) == 0) return false;
    } else {
      return false;
    }
  }
  return true;
}

std::string hello(const std::string& token, int rank) {
  std::string h(8, '\0');
  put64(&h[0], (uint64_t(token.size()) << 32) | uint32_t(rank));
  return h + token;
}

bool same_secret(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); i++)
    diff |= static_cast<unsigned char>(i < given.size() ? given[i] : 0) ^ static_cast<unsigned char>(expected[i]);
  return diff == 0;
}

int connect_to(const std::string& host, const std::string& port, Clock::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rv = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rv != 0) {
    error = gai_strerror(rv);
    return -1;
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int r = fd < 0 ? -1 : ::connect(fd, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (r < 0 && fd >= 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, poll_ms(deadline)) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) return fd;
    errno = err ? err : ETIMEDOUT;
  }
  if (r == 0) return fd;
  error = strerror(errno);
  if (fd >= 0) ::close(fd);
  return -1;
}

}  // namespace

Mesh::Mesh(StoreClient& store, const std::string& prefix, int rank, int size, const std::string& host,
           const std::string& token, Clock::time_point deadline)
    : rank_(rank), size_(size), fds_(size, -1) {
  if (pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) throw Error(ERR_DIST, std::string("mesh: pipe: ") + strerror(errno));
  if (size == 1) return;
  // Listen on the interface that reaches the store, on a free port.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), "0", &hints, &found) != 0) fail(ERR_DIST, "mesh: bad local address ", host);
  int listener = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool listening = listener >= 0 && bind(listener, found->ai_addr, found->ai_addrlen) == 0 && listen(listener, size) == 0;
  freeaddrinfo(found);
  if (!listening) {
    if (listener >= 0) ::close(listener);
    fail(ERR_DIST, "mesh: cannot listen on ", host, ": ", strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{listener};
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(listener, reinterpret_cast<sockaddr*>(&ss), &len);
  int port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  store.set(prefix + "/" + std::to_string(rank), host + " " + std::to_string(port));

  // Connect to every lower rank (the kernel completes the connection before it accepts), then
  // accept every higher one.
  for (int q = 0; q < rank; q++) {
    std::string address = store.get(prefix + "/" + std::to_string(q), std::chrono::ceil<Millis>(deadline - Clock::now()));
    size_t space = address.rfind(' ');
    std::string error;
    int fd = connect_to(address.substr(0, space), address.substr(space + 1), deadline, error);
    if (fd < 0 || !write_all(fd, hello(token, rank), deadline)) {
      if (fd >= 0) ::close(fd);
      fail(ERR_DIST, "mesh: could not connect to rank ", q, " at ", address, " (", error.empty() ? "handshake failed" : error, ")");
    }
    fds_[q] = fd;
  }
  for (int accepted = 0; accepted < size - 1 - rank;) {
    pollfd p{listener, POLLIN, 0};
    if (poll(&p, 1, poll_ms(deadline)) == 0) {
      std::vector<std::string> missing;
      for (int q = rank + 1; q < size; q++)
        if (fds_[q] < 0) missing.push_back(prefix + "/" + std::to_string(q));
      throw StoreTimeout("mesh: ranks did not connect in time", missing);
    }
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    set_socket_options(fd);
    char head[8];
    std::string given;
    bool ok = read_all(fd, head, 8, deadline);
    uint64_t h = ok ? get64(head) : 0;
    size_t token_bytes = size_t(h >> 32);
    int q = int(uint32_t(h));
    if (ok && token_bytes <= 4096) {
      given.resize(token_bytes);
      ok = read_all(fd, given.data(), token_bytes, deadline);
    } else {
      ok = false;
    }
    if (!ok || !same_secret(given, token) || q <= rank || q >= size || fds_[q] >= 0) {
      fprintf(stderr, "ignis dist: refused a connection to rank %d (wrong token or rank)\n", rank);
      ::close(fd);
      continue;
    }
    fds_[q] = fd;
    accepted++;
  }
  for (int fd : fds_)
    if (fd >= 0) set_socket_options(fd);
}

Mesh::~Mesh() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
  for (int fd : wake_)
    if (fd >= 0) ::close(fd);
}

void Mesh::interrupt() {
  interrupted_ = true;
  char byte = 0;
  while (write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
  }
}

void Mesh::shut_down() {
  for (int fd : fds_)
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void Mesh::exchange(std::vector<Transfer>& transfers, Clock::time_point deadline) {
  std::vector<std::deque<Transfer*>> sends(size_), recvs(size_);
  std::vector<char> headers(kHeader * transfers.size());
  for (size_t i = 0; i < transfers.size(); i++) {
    Transfer& t = transfers[i];
    t.done = 0;
    char* h = &headers[kHeader * i];
    if (t.send) {
      put64(h, t.id.seq);
      put64(h + 8, t.id.code);
      put64(h + 16, t.id.bytes);
    }
    (t.send ? sends : recvs)[t.peer].push_back(&t);
  }
  auto header_of = [&](Transfer* t) { return &headers[kHeader * size_t(t - transfers.data())]; };
  auto lost = [&](int peer, const char* what) {
    throw CommFailure("rank " + std::to_string(peer) + " closed its connection (" + what + ")", false);
  };

  for (;;) {
    if (interrupted_) throw Aborted{};
    bool pending = false;
    for (int p = 0; p < size_; p++) {
      // Write as much as the socket takes.
      while (!sends[p].empty()) {
        Transfer* t = sends[p].front();
        size_t total = kHeader + t->id.bytes;
        iovec iov[2];
        int n = 0;
        if (t->done < kHeader) iov[n++] = {header_of(t) + t->done, kHeader - t->done};
        size_t payload = t->done > kHeader ? t->done - kHeader : 0;
        if (t->id.bytes > payload) iov[n++] = {t->data + payload, t->id.bytes - payload};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = size_t(n);
        ssize_t wrote = n ? sendmsg(fds_[p], &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
        if (wrote < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
          lost(p, strerror(errno));
        }
        t->done += size_t(wrote);
        if (t->done < total) continue;
        sends[p].pop_front();
      }
      // Read what has arrived: a header, checked against the expected one, then the payload
      // straight into place.
      while (!recvs[p].empty()) {
        Transfer* t = recvs[p].front();
        char* h = header_of(t);
        char* into = t->done < kHeader ? h + t->done : t->data + (t->done - kHeader);
        size_t want = t->done < kHeader ? kHeader - t->done : t->id.bytes - (t->done - kHeader);
        if (want > 0) {
          ssize_t got = ::recv(fds_[p], into, want, MSG_DONTWAIT);
          if (got == 0) lost(p, "end of stream");
          if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            lost(p, strerror(errno));
          }
          bool header_done = t->done < kHeader && t->done + size_t(got) >= kHeader;
          t->done += size_t(got);
          if (header_done) {
            uint64_t seq = get64(h), code = get64(h + 8), bytes = get64(h + 16);
            if (seq != t->id.seq || code != t->id.code || bytes != t->id.bytes)
              throw Mismatch("rank " + std::to_string(p) + " sent a message of collective #" + std::to_string(seq) + " (" +
                             std::to_string(bytes) + " bytes) where this rank expected one of collective #" +
                             std::to_string(t->id.seq) + " (" + std::to_string(t->id.bytes) +
                             " bytes): the ranks issued different collectives or shapes (IGNIS_DIST_DEBUG=1 names them)");
          }
          if (t->done < kHeader + t->id.bytes) continue;
        }
        recvs[p].pop_front();
      }
      pending = pending || !sends[p].empty() || !recvs[p].empty();
    }
    if (!pending) return;
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    for (int p = 0; p < size_; p++) {
      short events = short((sends[p].empty() ? 0 : POLLOUT) | (recvs[p].empty() ? 0 : POLLIN));
      if (events) fds.push_back({fds_[p], events, 0});
    }
    if (Clock::now() >= deadline) throw CommFailure("timed out", true);
    if (poll(fds.data(), fds.size(), poll_ms(deadline)) < 0 && errno != EINTR)
      throw CommFailure(std::string("poll: ") + strerror(errno), false);
  }
}

}  // namespace ignis::dist
