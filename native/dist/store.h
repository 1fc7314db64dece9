// The TCP key-value store that ranks rendezvous through (the role of torch.distributed's
// TCPStore): a server thread and blocking clients. Every client must first present the job's
// token; the server refuses (and logs) any other. Keys hold bytes; `add` keeps a decimal counter.
//
// Wire format, both ways: u32 length of the rest, then a u8 opcode (requests) or status
// (replies), then fields: strings as u32 length + bytes, integers as 8 little-endian bytes.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "core/error.h"

namespace ignis::dist {

using Millis = std::chrono::milliseconds;

// A wait or get that ran past its timeout (ERR_TIMEOUT), with the keys still missing.
class StoreTimeout : public Error {
 public:
  StoreTimeout(const std::string& message, std::vector<std::string> missing)
      : Error(ERR_TIMEOUT, message), missing(std::move(missing)) {}
  std::vector<std::string> missing;
};

class StoreServer {
 public:
  // Listens on host:port (an empty host: every interface; port 0: a free port) and serves on
  // its own thread until destroyed. Fails with ERR_DIST when the port cannot be bound.
  StoreServer(const std::string& host, int port, const std::string& token);
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class StoreClient {
 public:
  // Connects (retrying until `timeout` while the server is not up yet) and presents `token`.
  // `close_key`, when not empty, is a key the server sets when this connection closes, so that
  // others can tell that this process is gone. `timeout` also bounds every later request.
  StoreClient(const std::string& host, int port, const std::string& token, Millis timeout,
              const std::string& close_key = "");
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::string& value);
  // set() without waiting for the reply (progress reports that must not cost a round trip).
  void post(const std::string& key, const std::string& value);
  // The value of `key`, waiting for it to be set; StoreTimeout after `timeout`.
  std::string get(const std::string& key, Millis timeout);
  // Adds `delta` to the counter at `key` (0 when unset) and returns the new value.
  int64_t add(const std::string& key, int64_t delta);
  // Waits until every key is set; StoreTimeout naming the missing ones after `timeout`.
  void wait(const std::vector<std::string>& keys, Millis timeout);
  // Whether every key is set, without waiting.
  bool check(const std::vector<std::string>& keys);
  // Deletes `key`; returns whether it existed.
  bool remove(const std::string& key);
  // The local IP address this client reaches the server from (the interface towards it).
  std::string local_address() const;
  Millis timeout() const { return timeout_; }

 private:
  std::string request(const std::string& frame, Millis wait_timeout);
  void connect_and_hello();
  void close_socket();

  std::string host_;
  int port_;
  std::string token_;
  Millis timeout_;
  std::string close_key_;
  int fd_ = -1;
};

}  // namespace ignis::dist
