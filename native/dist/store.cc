#include "dist/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <thread>
#include <unordered_map>

namespace ignis::dist {
namespace {

using Clock = std::chrono::steady_clock;

enum Op : uint8_t { HELLO = 0, SET = 1, GET = 2, ADD = 3, WAIT = 4, CHECK = 5, DELETE = 6, POST = 7 };
enum Status : uint8_t { OK = 0, TIMED_OUT = 1, REFUSED = 2 };

constexpr uint32_t kMaxFrame = 256u << 20;      // largest frame from a client that presented the token
constexpr uint32_t kMaxHelloFrame = 4096;       // largest frame before that
constexpr auto kHelloDeadline = std::chrono::seconds(30);  // to present the token after connecting
constexpr auto kReplyGrace = std::chrono::seconds(5);  // a server-side wait's reply may lag its deadline

// --- frames ---

struct Writer {
  std::string out = std::string(4, '\0');  // the length, filled by frame()
  Writer& u8(uint8_t v) {
    out.push_back(char(v));
    return *this;
  }
  Writer& u32(uint32_t v) {
    for (int i = 0; i < 4; i++) out.push_back(char((v >> (8 * i)) & 0xff));
    return *this;
  }
  Writer& i64(int64_t v) {
    for (int i = 0; i < 8; i++) out.push_back(char((uint64_t(v) >> (8 * i)) & 0xff));
    return *this;
  }
  Writer& str(const std::string& s) {
    u32(uint32_t(s.size()));
    out += s;
    return *this;
  }
  Writer& strs(const std::vector<std::string>& list) {
    u32(uint32_t(list.size()));
    for (const auto& s : list) str(s);
    return *this;
  }
  std::string frame() {
    uint32_t n = uint32_t(out.size() - 4);
    for (int i = 0; i < 4; i++) out[i] = char((n >> (8 * i)) & 0xff);
    return std::move(out);
  }
};

// Reads a frame's fields; `ok` turns false (and stays so) on a truncated frame.
struct Reader {
  const char* p;
  const char* end;
  bool ok = true;
  bool take(size_t n) {
    if (!ok || size_t(end - p) < n) return ok = false;
    return true;
  }
  uint8_t u8() {
    if (!take(1)) return 0;
    return uint8_t(*p++);
  }
  uint32_t u32() {
    if (!take(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(p[i])) << (8 * i);
    p += 4;
    return v;
  }
  int64_t i64() {
    if (!take(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= uint64_t(uint8_t(p[i])) << (8 * i);
    p += 8;
    return int64_t(v);
  }
  std::string str() {
    uint32_t n = u32();
    if (!take(n)) return {};
    std::string s(p, n);
    p += n;
    return s;
  }
  std::vector<std::string> strs() {
    uint32_t n = u32();
    std::vector<std::string> list;
    for (uint32_t i = 0; i < n && ok; i++) list.push_back(str());
    return list;
  }
};

uint32_t frame_length(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(p[i])) << (8 * i);
  return v;
}

// Compares without an early exit, so the time taken does not tell how much of a guess matched.
bool same_secret(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); i++) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void set_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

std::string address_str(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

std::string join(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "" : ", ") + k;
  return s;
}

int64_t ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : left;
}

}  // namespace

// --- server ---

struct StoreServer::Impl {
  struct Conn {
    int fd;
    std::string peer;
    std::string in, out;
    bool authed = false;
    bool closing = false;  // close once `out` is flushed
    bool dead = false;
    std::string close_key;
    Clock::time_point hello_deadline;
    // A GET or WAIT waiting for keys.
    bool blocked = false;
    uint8_t blocked_op = 0;
    std::vector<std::string> keys;
    Clock::time_point deadline;
  };

  int listen_fd = -1;
  int wake_pipe[2] = {-1, -1};
  int port = 0;
  std::string token;
  std::thread thread;
  std::list<Conn> conns;
  std::unordered_map<std::string, std::string> data;
  // Refused connections are logged at most once a second, with a count of the silent ones.
  Clock::time_point last_refusal_log{};
  int unlogged_refusals = 0;

  ~Impl() {
    for (auto& c : conns) ::close(c.fd);
    if (listen_fd >= 0) ::close(listen_fd);
    for (int fd : wake_pipe)
      if (fd >= 0) ::close(fd);
  }

  void bind_and_listen(const std::string& host, int want_port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port_str = std::to_string(want_port);
    int rv = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_str.c_str(), &hints, &found);
    if (rv != 0) fail(ERR_DIST, "store: cannot resolve ", host, ": ", gai_strerror(rv));
    std::string last_error = "no address";
    // Prefer IPv6 (dual-stack) for the wildcard address, so IPv4 clients reach it too.
    std::vector<addrinfo*> candidates;
    for (addrinfo* a = found; a; a = a->ai_next) candidates.push_back(a);
    std::stable_sort(candidates.begin(), candidates.end(), [&](addrinfo* a, addrinfo* b) {
      return host.empty() && a->ai_family == AF_INET6 && b->ai_family != AF_INET6;
    });
    for (addrinfo* a : candidates) {
      int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      int on = 1, off = 0;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
      if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
      if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 512) == 0) {
        listen_fd = fd;
        break;
      }
      last_error = strerror(errno);
      ::close(fd);
    }
    freeaddrinfo(found);
    if (listen_fd < 0) fail(ERR_DIST, "store: cannot listen on ", host.empty() ? "*" : host, ":", want_port, ": ", last_error);
    set_nonblocking(listen_fd);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                    : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) fail(ERR_DIST, "store: pipe: ", strerror(errno));
  }

  void log_refusal(const Conn& c, const char* why) {
    auto now = Clock::now();
    if (now - last_refusal_log < std::chrono::seconds(1)) {
      unlogged_refusals++;
      return;
    }
    std::string more = unlogged_refusals ? " (and " + std::to_string(unlogged_refusals) + " more since the last report)" : "";
    fprintf(stderr, "ignis store: refused a connection from %s: %s%s\n", c.peer.c_str(), why, more.c_str());
    fflush(stderr);
    last_refusal_log = now;
    unlogged_refusals = 0;
  }

  void send_now(Conn& c, const std::string& frame) {
    c.out += frame;
    flush(c);
  }

  void flush(Conn& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out.erase(0, size_t(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        c.dead = true;
        return;
      }
    }
    if (c.closing) c.dead = true;
  }

  void reply(Conn& c, Status status) {
    Writer w;
    send_now(c, w.u8(status).frame());
  }

  bool all_present(const std::vector<std::string>& keys) const {
    for (const auto& k : keys)
      if (!data.count(k)) return false;
    return true;
  }

  std::vector<std::string> missing(const std::vector<std::string>& keys) const {
    std::vector<std::string> out;
    for (const auto& k : keys)
      if (!data.count(k)) out.push_back(k);
    return out;
  }

  // Answers a blocked GET/WAIT whose keys are all set.
  void answer_blocked(Conn& c) {
    c.blocked = false;
    if (c.blocked_op == GET) {
      Writer w;
      send_now(c, w.u8(OK).str(data[c.keys[0]]).frame());
    } else {
      reply(c, OK);
    }
    c.keys.clear();
  }

  // Handles one complete request; returns false when the connection must be dropped.
  bool handle(Conn& c, const char* p, uint32_t n) {
    Reader r{p, p + n};
    uint8_t op = r.u8();
    if (!c.authed) {
      if (op != HELLO) {
        log_refusal(c, "did not present a token");
        return false;
      }
      std::string given = r.str();
      std::string close_key = r.str();
      if (!r.ok || !same_secret(given, token)) {
        log_refusal(c, "wrong token");
        reply(c, REFUSED);
        c.closing = true;
        if (c.out.empty()) c.dead = true;
        return true;
      }
      c.authed = true;
      c.close_key = close_key;
      reply(c, OK);
      return true;
    }
    switch (op) {
      case SET:
      case POST: {
        std::string key = r.str(), value = r.str();
        if (!r.ok) return false;
        data[key] = std::move(value);
        if (op == SET) reply(c, OK);
        return true;
      }
      case ADD: {
        std::string key = r.str();
        int64_t delta = r.i64();
        if (!r.ok) return false;
        auto it = data.find(key);
        int64_t value = it == data.end() ? 0 : std::strtoll(it->second.c_str(), nullptr, 10);
        value = int64_t(uint64_t(value) + uint64_t(delta));
        data[key] = std::to_string(value);
        Writer w;
        send_now(c, w.u8(OK).i64(value).frame());
        return true;
      }
      case GET:
      case WAIT: {
        std::vector<std::string> keys = op == GET ? std::vector<std::string>{r.str()} : r.strs();
        int64_t timeout_ms = r.i64();
        if (!r.ok) return false;
        c.blocked = true;
        c.blocked_op = op;
        c.keys = std::move(keys);
        c.deadline = Clock::now() + Millis(std::max<int64_t>(0, std::min<int64_t>(timeout_ms, int64_t(1) << 40)));
        if (all_present(c.keys)) answer_blocked(c);
        return true;
      }
      case CHECK: {
        std::vector<std::string> keys = r.strs();
        if (!r.ok) return false;
        Writer w;
        send_now(c, w.u8(OK).u8(all_present(keys) ? 1 : 0).frame());
        return true;
      }
      case DELETE: {
        std::string key = r.str();
        if (!r.ok) return false;
        Writer w;
        send_now(c, w.u8(OK).u8(data.erase(key) ? 1 : 0).frame());
        return true;
      }
      default:
        return false;
    }
  }

  // Runs every complete request of every connection that is not waiting, and answers waits whose
  // keys have appeared, until nothing changes (a set may unblock a wait whose client sent more).
  void serve_ready() {
    for (bool progress = true; progress;) {
      progress = false;
      for (auto& c : conns) {
        if (c.dead || c.closing) continue;
        if (c.blocked) {
          if (!all_present(c.keys)) continue;
          answer_blocked(c);
          progress = true;
        }
        size_t used = 0;
        while (!c.blocked && !c.dead && !c.closing && c.in.size() - used >= 4) {
          uint32_t n = frame_length(c.in.data() + used);
          if (c.in.size() - used - 4 < n) break;
          if (!handle(c, c.in.data() + used + 4, n)) c.dead = true;
          used += 4 + size_t(n);
          progress = true;
        }
        c.in.erase(0, used);
      }
    }
  }

  void read_from(Conn& c) {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        c.in.append(buf, size_t(n));
        // A declared length above the limit ends the connection before buffering it.
        if (c.in.size() >= 4 && frame_length(c.in.data()) > (c.authed ? kMaxFrame : kMaxHelloFrame)) {
          if (!c.authed) log_refusal(c, "sent an oversized first message");
          c.dead = true;
          return;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      c.dead = true;  // EOF or error: the client is gone, possibly mid-message
      return;
    }
  }

  void accept_all() {
    for (;;) {
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of descriptors: try again on the next poll
      }
      set_nodelay(fd);
      Conn c;
      c.fd = fd;
      c.peer = address_str(ss);
      c.hello_deadline = Clock::now() + kHelloDeadline;
      conns.push_back(std::move(c));
    }
  }

  void sweep() {
    bool closed_key = false;
    for (auto it = conns.begin(); it != conns.end();) {
      if (!it->dead) {
        ++it;
        continue;
      }
      ::close(it->fd);
      if (it->authed && !it->close_key.empty()) {
        data[it->close_key] = "closed";
        closed_key = true;
      }
      it = conns.erase(it);
    }
    if (closed_key) serve_ready();
  }

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      auto now = Clock::now();
      Clock::time_point next = now + std::chrono::seconds(10);
      for (auto& c : conns) {
        if (c.blocked && c.deadline <= now) {
          Writer w;
          c.blocked = false;
          send_now(c, w.u8(TIMED_OUT).strs(missing(c.keys)).frame());
        }
        if (!c.authed && c.hello_deadline <= now) c.dead = true;
        if (c.blocked) next = std::min(next, c.deadline);
        if (!c.authed) next = std::min(next, c.hello_deadline);
      }
      serve_ready();
      sweep();

      fds.clear();
      fds.push_back({wake_pipe[0], POLLIN, 0});
      fds.push_back({listen_fd, POLLIN, 0});
      for (auto& c : conns) fds.push_back({c.fd, short(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
      int wait_ms = int(std::min<int64_t>(ms_left(next) + 1, 10000));
      int rv = poll(fds.data(), fds.size(), wait_ms);
      if (rv < 0 && errno != EINTR) {
        fprintf(stderr, "ignis store: poll failed: %s\n", strerror(errno));
        std::this_thread::sleep_for(Millis(10));
        continue;
      }
      if (rv <= 0) continue;
      if (fds[0].revents) return;  // woken up to stop
      if (fds[1].revents & POLLIN) accept_all();
      size_t i = 2;
      for (auto& c : conns) {
        if (i >= fds.size()) break;  // accepted during this round
        short ev = fds[i++].revents;
        if (ev & POLLOUT) flush(c);
        if (ev & (POLLIN | POLLHUP | POLLERR)) read_from(c);
      }
      serve_ready();
      sweep();
    }
  }
};

StoreServer::StoreServer(const std::string& host, int port, const std::string& token) : impl_(new Impl()) {
  if (port < 0 || port > 65535) fail(ERR_ARG, "store: port must be in [0, 65535], got ", port);
  impl_->token = token;
  impl_->bind_and_listen(host, port);
  impl_->thread = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "ignis-store");
    try {
      impl->run();
    } catch (const std::exception& e) {
      // Only allocation failures can reach here; the clients then see their connections close.
      fprintf(stderr, "ignis store: server stopped: %s\n", e.what());
    }
  });
}

StoreServer::~StoreServer() {
  char byte = 0;
  while (write(impl_->wake_pipe[1], &byte, 1) < 0 && errno == EINTR) {
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

int StoreServer::port() const { return impl_->port; }

// --- client ---

namespace {

// Sends all of `data` before `deadline`; false when the connection failed or the time ran out.
bool send_all(int fd, const std::string& data, Clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, int(std::min<int64_t>(ms_left(deadline), 1000))) < 0 && errno != EINTR) return false;
      if (Clock::now() >= deadline) return false;
      continue;
    }
    return false;
  }
  return true;
}

// Reads exactly n bytes before `deadline`. 1: done; 0: the peer closed; -1: error or timeout.
int recv_exact(int fd, char* out, size_t n, Clock::time_point deadline) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::recv(fd, out + done, n - done, MSG_DONTWAIT);
    if (r > 0) {
      done += size_t(r);
      continue;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (Clock::now() >= deadline) return -1;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(std::min<int64_t>(ms_left(deadline) + 1, 1000))) < 0 && errno != EINTR) return -1;
  }
  return 1;
}

}  // namespace

StoreClient::StoreClient(const std::string& host, int port, const std::string& token, Millis timeout,
                         const std::string& close_key)
    : host_(host), port_(port), token_(token), timeout_(timeout), close_key_(close_key) {
  if (port < 1 || port > 65535) fail(ERR_ARG, "store: port must be in [1, 65535], got ", port);
  if (timeout.count() < 0) fail(ERR_ARG, "store: timeout must be >= 0");
  connect_and_hello();
}

StoreClient::~StoreClient() { close_socket(); }

void StoreClient::close_socket() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void StoreClient::connect_and_hello() {
  auto deadline = Clock::now() + timeout_;
  std::string where = host_ + ":" + std::to_string(port_);
  std::string last_error = "timed out";
  // The server may not be listening yet (rank 0 starting late): retry until the deadline.
  for (int attempt = 0;; attempt++) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port_str = std::to_string(port_);
    int rv = getaddrinfo(host_.c_str(), port_str.c_str(), &hints, &found);
    if (rv != 0) {
      last_error = gai_strerror(rv);
      found = nullptr;
    }
    for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next) {
      int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (r < 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        r = poll(&p, 1, int(std::min<int64_t>(ms_left(deadline) + 1, 5000)));
        int err = 0;
        socklen_t len = sizeof(err);
        if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
          r = 0;
        } else {
          errno = r == 0 ? ETIMEDOUT : err;
          r = -1;
        }
      }
      if (r == 0) {
        fd_ = fd;
      } else {
        last_error = strerror(errno);
        ::close(fd);
      }
    }
    if (found) freeaddrinfo(found);
    if (fd_ >= 0) break;
    if (Clock::now() >= deadline)
      throw StoreTimeout("store: could not connect to " + where + " within " + std::to_string(timeout_.count()) +
                             " ms (" + last_error + ")",
                         {});
    std::this_thread::sleep_for(Millis(std::min<int64_t>(std::min(10 << std::min(attempt, 4), 100), ms_left(deadline) + 1)));
  }
  set_nodelay(fd_);
  Writer w;
  w.u8(HELLO).str(token_).str(close_key_);
  std::string frame = w.frame();
  std::string reply;
  bool sent = send_all(fd_, frame, deadline + kReplyGrace);
  char head[4];
  if (sent && recv_exact(fd_, head, 4, deadline + kReplyGrace) == 1) {
    uint32_t n = frame_length(head);
    reply.resize(n);
    if (n > kMaxHelloFrame || recv_exact(fd_, reply.data(), n, deadline + kReplyGrace) != 1) reply.clear();
  }
  if (reply.empty() || uint8_t(reply[0]) != OK) {
    close_socket();
    bool refused = !reply.empty() && uint8_t(reply[0]) == REFUSED;
    fail(ERR_DIST, "store: the server at ", where,
         refused ? " refused this client: wrong token (IGNIS_STORE_TOKEN must be the job's)"
                 : " closed the connection during the handshake");
  }
}

std::string StoreClient::request(const std::string& frame, Millis wait_timeout) {
  if (fd_ < 0) connect_and_hello();  // after a lost connection or a client-side timeout
  std::string where = host_ + ":" + std::to_string(port_);
  auto deadline = Clock::now() + timeout_ + wait_timeout + kReplyGrace;
  if (!send_all(fd_, frame, deadline)) {
    close_socket();
    fail(ERR_DIST, "store: lost the connection to ", where, " (", strerror(errno), ")");
  }
  char head[4];
  int got = recv_exact(fd_, head, 4, deadline);
  std::string reply;
  if (got == 1) {
    reply.resize(frame_length(head));
    got = recv_exact(fd_, reply.data(), reply.size(), deadline);
  }
  if (got != 1 || reply.empty()) {
    close_socket();
    if (got == -1 && Clock::now() >= deadline)
      throw StoreTimeout("store: no reply from " + where + " within " + std::to_string((timeout_ + wait_timeout).count()) + " ms", {});
    fail(ERR_DIST, "store: the server at ", where, " closed the connection");
  }
  return reply;
}

void StoreClient::set(const std::string& key, const std::string& value) {
  Writer w;
  w.u8(SET).str(key).str(value);
  request(w.frame(), Millis(0));
}

void StoreClient::post(const std::string& key, const std::string& value) {
  if (fd_ < 0) connect_and_hello();
  Writer w;
  w.u8(POST).str(key).str(value);
  if (!send_all(fd_, w.frame(), Clock::now() + timeout_)) {
    close_socket();
    fail(ERR_DIST, "store: lost the connection to ", host_, ":", port_);
  }
}

std::string StoreClient::get(const std::string& key, Millis timeout) {
  Writer w;
  w.u8(GET).str(key).i64(timeout.count());
  std::string reply = request(w.frame(), timeout);
  Reader r{reply.data() + 1, reply.data() + reply.size()};
  if (uint8_t(reply[0]) == TIMED_OUT)
    throw StoreTimeout("store get: key " + key + " was not set within " + std::to_string(timeout.count()) + " ms", {key});
  std::string value = r.str();
  if (!r.ok) fail(ERR_DIST, "store get: malformed reply");
  return value;
}

int64_t StoreClient::add(const std::string& key, int64_t delta) {
  Writer w;
  w.u8(ADD).str(key).i64(delta);
  std::string reply = request(w.frame(), Millis(0));
  Reader r{reply.data() + 1, reply.data() + reply.size()};
  int64_t value = r.i64();
  if (!r.ok) fail(ERR_DIST, "store add: malformed reply");
  return value;
}

void StoreClient::wait(const std::vector<std::string>& keys, Millis timeout) {
  Writer w;
  w.u8(WAIT).strs(keys).i64(timeout.count());
  std::string reply = request(w.frame(), timeout);
  if (uint8_t(reply[0]) == TIMED_OUT) {
    Reader r{reply.data() + 1, reply.data() + reply.size()};
    std::vector<std::string> missing = r.strs();
    throw StoreTimeout("store wait: timed out after " + std::to_string(timeout.count()) + " ms waiting for " + join(missing),
                       missing);
  }
}

bool StoreClient::check(const std::vector<std::string>& keys) {
  Writer w;
  w.u8(CHECK).strs(keys);
  std::string reply = request(w.frame(), Millis(0));
  return reply.size() >= 2 && reply[1] == 1;
}

bool StoreClient::remove(const std::string& key) {
  Writer w;
  w.u8(DELETE).str(key);
  std::string reply = request(w.frame(), Millis(0));
  return reply.size() >= 2 && reply[1] == 1;
}

std::string StoreClient::local_address() const {
  if (fd_ < 0) return "";
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char host[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof(host));
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    // An IPv4 client of a dual-stack server shows as ::ffff:a.b.c.d.
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof(host));
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    }
  }
  return host;
}

}  // namespace ignis::dist
