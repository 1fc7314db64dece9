// N-API glue of the distributed part: the TCP store (server and client) and the process groups
// (Gloo, and NCCL when the CUDA backend is built in), whose operations return work ids that
// complete through a thread-safe function.
#include <cmath>
#include <unordered_map>
#include "dist/gloo.h"
#include "dist/store.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) fail(ERR_ARG, what, " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// Bytes from a string (UTF-8) or a Uint8Array / Buffer.
std::string bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info[i].IsString()) return info[i].As<Napi::String>().Utf8Value();
  if (info[i].IsTypedArray()) {
    auto a = info[i].As<Napi::TypedArray>();
    if (a.TypedArrayType() == napi_uint8_array) {
      auto u = a.As<Napi::Uint8Array>();
      return std::string(reinterpret_cast<const char*>(u.Data()), u.ByteLength());
    }
  }
  fail(ERR_ARG, what, " must be a string or a Uint8Array");
}

std::vector<std::string> strings_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsArray()) fail(ERR_ARG, what, " must be an array of strings");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsString()) fail(ERR_ARG, what, ": element ", k, " is not a string");
    out.push_back(v.As<Napi::String>().Utf8Value());
  }
  return out;
}

dist::Millis millis_arg(const Napi::CallbackInfo& info, size_t i) {
  int64_t ms = int_arg(info, i);
  if (ms < 0) fail(ERR_ARG, "timeout must be >= 0 ms, got ", ms);
  return dist::Millis(ms);
}

int port_arg(const Napi::CallbackInfo& info, size_t i) {
  int64_t port = int_arg(info, i);
  if (port < 0 || port > 65535) fail(ERR_ARG, "port must be in [0, 65535], got ", port);
  return int(port);
}

// new StoreServer(host, port, token): serves on a native thread until close().
class StoreServerWrap : public Napi::ObjectWrap<StoreServerWrap> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "StoreServer",
                       {InstanceMethod<&StoreServerWrap::Port>("port"), InstanceMethod<&StoreServerWrap::Close>("close")});
  }

  explicit StoreServerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreServerWrap>(info) {
    guarded(info.Env(), [&] {
      server_ = std::make_unique<dist::StoreServer>(string_arg(info, 0, "host"), port_arg(info, 1),
                                                    bytes_arg(info, 2, "token"));
      return info.Env().Undefined();
    });
  }

 private:
  Napi::Value Port(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (!server_) fail(ERR_DIST, "store server: closed");
      return Napi::Number::New(info.Env(), server_->port());
    });
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    server_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<dist::StoreServer> server_;
};

// new StoreClient(host, port, token, timeoutMs): blocking requests on the calling thread.
class StoreClientWrap : public Napi::ObjectWrap<StoreClientWrap> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "StoreClient",
                       {InstanceMethod<&StoreClientWrap::Set>("set"), InstanceMethod<&StoreClientWrap::Get>("get"),
                        InstanceMethod<&StoreClientWrap::Add>("add"), InstanceMethod<&StoreClientWrap::Wait>("wait"),
                        InstanceMethod<&StoreClientWrap::Check>("check"),
                        InstanceMethod<&StoreClientWrap::Delete>("deleteKey"),
                        InstanceMethod<&StoreClientWrap::Close>("close")});
  }

  explicit StoreClientWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreClientWrap>(info) {
    guarded(info.Env(), [&] {
      client_ = std::make_unique<dist::StoreClient>(string_arg(info, 0, "host"), port_arg(info, 1),
                                                    bytes_arg(info, 2, "token"), millis_arg(info, 3));
      return info.Env().Undefined();
    });
  }

 private:
  dist::StoreClient& client() {
    if (!client_) fail(ERR_DIST, "store: client closed");
    return *client_;
  }
  Napi::Value Set(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      client().set(string_arg(info, 0, "key"), bytes_arg(info, 1, "value"));
      return info.Env().Undefined();
    });
  }
  Napi::Value Get(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      std::string value = client().get(string_arg(info, 0, "key"), millis_arg(info, 1));
      return Napi::Buffer<char>::Copy(info.Env(), value.data(), value.size());
    });
  }
  Napi::Value Add(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), double(client().add(string_arg(info, 0, "key"), int_arg(info, 1))));
    });
  }
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      client().wait(strings_arg(info, 0, "keys"), millis_arg(info, 1));
      return info.Env().Undefined();
    });
  }
  Napi::Value Check(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      return Napi::Boolean::New(info.Env(), client().check(strings_arg(info, 0, "keys")));
    });
  }
  Napi::Value Delete(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      return Napi::Boolean::New(info.Env(), client().remove(string_arg(info, 0, "key")));
    });
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    client_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<dist::StoreClient> client_;
};

// What the JS thread knows of a group's work: the works not yet reported to JS, and the
// thread-safe function that reports them. Shared with every queued report, so that reports
// arriving after the group object is gone find it.
struct Completion;
struct Report;
void report_js(Napi::Env env, Napi::Function on_done, std::nullptr_t*, Report* report);
using ReportFn = Napi::TypedThreadSafeFunction<std::nullptr_t, Report, report_js>;

struct Completion {
  std::unordered_map<uint64_t, std::shared_ptr<dist::Work>> pending;
  ReportFn fn;
  bool released = false;

  // Keeps the event loop alive while work is pending (JS thread only).
  void add(Napi::Env env, const std::shared_ptr<dist::Work>& work) {
    if (pending.empty()) fn.Ref(env);
    pending[work->id] = work;
  }
  void remove(Napi::Env env, uint64_t id) {
    if (pending.erase(id) && pending.empty() && !released) fn.Unref(env);
  }
};

struct Report {
  std::shared_ptr<Completion> completion;
  uint64_t id;
  const char* code;
  std::string message;
};

// On the JS thread: onDone(id, error | null).
void report_js(Napi::Env env, Napi::Function on_done, std::nullptr_t*, Report* raw) {
  std::unique_ptr<Report> report(raw);
  if (env == nullptr || on_done.IsEmpty()) return;  // the environment is going away
  report->completion->remove(env, report->id);
  Napi::Value error = report->code ? make_error(env, report->code, report->message) : env.Null();
  on_done.Call({Napi::Number::New(env, double(report->id)), error});
}

dist::ReduceOp reduce_op_arg(const Napi::CallbackInfo& info, size_t i) {
  int64_t op = int_arg(info, i);
  if (op < 0 || op > int64_t(dist::ReduceOp::Prod)) fail(ERR_ARG, "unknown reduce op code ", op);
  return dist::ReduceOp(op);
}

int rank_arg(const Napi::CallbackInfo& info, size_t i) {
  int64_t r = int_arg(info, i);
  if (r < 0 || r > (1 << 24)) fail(ERR_ARG, "argument ", i, " must be a rank, got ", r);
  return int(r);
}

Napi::Value option(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) fail(ERR_ARG, "process group: missing option ", name);
  return v;
}

std::unique_ptr<dist::ProcessGroup> make_gloo(dist::GroupOptions opt, dist::OnDone on_done) {
  return std::make_unique<dist::GlooGroup>(std::move(opt), std::move(on_done));
}

dist::NcclBackend& nccl() {
  dist::NcclBackend* b = dist::nccl_backend();
  if (!b) fail(ERR_DEVICE, "nccl: ", kNoCudaBackend);
  return *b;
}

std::unique_ptr<dist::ProcessGroup> make_nccl(dist::GroupOptions opt, dist::OnDone on_done) {
  return nccl().create(std::move(opt), std::move(on_done));
}

using MakeGroup = std::unique_ptr<dist::ProcessGroup> (*)(dist::GroupOptions, dist::OnDone);

// new GlooGroup / NcclGroup({rank, size, storeHost, storePort, token, prefix, timeoutMs, debug,
// iface, device, peersPrefix}, onDone): starts the rendezvous at once (initWork() is its id);
// every method queues an operation and returns its work id; onDone(id, error | null) reports each
// one on the JS thread.
template <MakeGroup make>
class GroupWrap : public Napi::ObjectWrap<GroupWrap<make>> {
  using Self = GroupWrap<make>;

 public:
  static Napi::Function define_class(Napi::Env env, const char* name) {
    return Self::DefineClass(env, name,
                             {Self::template InstanceMethod<&Self::InitWork>("initWork"),
                              Self::template InstanceMethod<&Self::AllReduce>("allReduce"),
                              Self::template InstanceMethod<&Self::AllGather>("allGather"),
                              Self::template InstanceMethod<&Self::ReduceScatter>("reduceScatter"),
                              Self::template InstanceMethod<&Self::Broadcast>("broadcast"),
                              Self::template InstanceMethod<&Self::Barrier>("barrier"),
                              Self::template InstanceMethod<&Self::Send>("send"),
                              Self::template InstanceMethod<&Self::Recv>("recv"),
                              Self::template InstanceMethod<&Self::Wait>("wait"),
                              Self::template InstanceMethod<&Self::Destroy>("destroy")});
  }

  explicit GroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Self>(info) {
    guarded(info.Env(), [&] {
      if (!info[0].IsObject()) fail(ERR_ARG, "process group: options must be an object");
      if (!info[1].IsFunction()) fail(ERR_ARG, "process group: onDone must be a function");
      Napi::Object o = info[0].As<Napi::Object>();
      dist::GroupOptions opt;
      auto integer = [&](const char* name) {
        Napi::Value v = option(o, name);
        double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
        if (!(d == std::floor(d)) || std::fabs(d) > 1e15) fail(ERR_ARG, "process group: ", name, " must be an integer");
        return int64_t(d);
      };
      auto text = [&](const char* name) {
        Napi::Value v = option(o, name);
        if (!v.IsString()) fail(ERR_ARG, "process group: ", name, " must be a string");
        return v.As<Napi::String>().Utf8Value();
      };
      opt.rank = int(integer("rank"));
      opt.size = int(integer("size"));
      opt.store_host = text("storeHost");
      opt.store_port = int(integer("storePort"));
      opt.token = text("token");
      opt.prefix = text("prefix");
      opt.timeout = dist::Millis(integer("timeoutMs"));
      opt.debug = option(o, "debug").ToBoolean();
      opt.iface = text("iface");
      opt.device = int(integer("device"));
      opt.peers_prefix = text("peersPrefix");

      completion_ = std::make_shared<Completion>();
      completion_->fn = ReportFn::New(info.Env(), info[1].As<Napi::Function>(), "ignis.dist", 0, 1);
      completion_->fn.Unref(info.Env());
      ReportFn fn = completion_->fn;
      std::weak_ptr<Completion> weak = completion_;
      group_ = make(opt, [fn, weak](const std::shared_ptr<dist::Work>& work) mutable {
        auto completion = weak.lock();
        if (!completion || work->claimed) return;
        auto* report = new Report{completion, work->id, work->code(), work->message()};
        if (fn.NonBlockingCall(report) != napi_ok) delete report;
      });
      completion_->add(info.Env(), group_->connect_work());
      napi_add_env_cleanup_hook(info.Env(), cleanup, this);
      return info.Env().Undefined();
    });
  }

  ~GroupWrap() override {
    if (group_) napi_remove_env_cleanup_hook(this->Env(), cleanup, this);
    stop();
  }

 private:
  static void cleanup(void* self) { static_cast<Self*>(self)->stop(); }

  // Aborts and joins; queued reports still reach JS, then the thread-safe function goes.
  void stop() {
    if (group_) group_->shutdown();
    if (completion_ && !completion_->released) {
      completion_->released = true;
      completion_->fn.Release();
    }
  }

  dist::ProcessGroup& group() {
    if (!group_ || destroyed_) fail(ERR_DIST, "the process group was destroyed");
    return *group_;
  }

  Napi::Value issue(Napi::Env env, const std::shared_ptr<dist::Work>& work) {
    completion_->add(env, work);
    return Napi::Number::New(env, double(work->id));
  }

  Napi::Value InitWork(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), double(group().connect_work()->id)); });
  }
  // allReduce(t, op, timeoutMs)
  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      return issue(info.Env(), group().all_reduce(tensor_arg(info, 0), reduce_op_arg(info, 1), millis_arg(info, 2)));
    });
  }
  // allGather(input, outputs, timeoutMs)
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      return issue(info.Env(), group().all_gather(tensor_arg(info, 0), tensor_list_arg(info, 1), millis_arg(info, 2)));
    });
  }
  // reduceScatter(inputs, output, op, timeoutMs)
  Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      return issue(info.Env(), group().reduce_scatter(tensor_list_arg(info, 0), tensor_arg(info, 1), reduce_op_arg(info, 2),
                                                      millis_arg(info, 3)));
    });
  }
  // broadcast(t, src, timeoutMs)
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      return issue(info.Env(), group().broadcast(tensor_arg(info, 0), rank_arg(info, 1), millis_arg(info, 2)));
    });
  }
  // barrier(timeoutMs)
  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] { return issue(info.Env(), group().barrier(millis_arg(info, 0))); });
  }
  // send(t, dst, tag, timeoutMs)
  Napi::Value Send(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      return issue(info.Env(), group().send(tensor_arg(info, 0), rank_arg(info, 1), int_arg(info, 2), millis_arg(info, 3)));
    });
  }
  // recv(t, src, tag, timeoutMs)
  Napi::Value Recv(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      return issue(info.Env(), group().recv(tensor_arg(info, 0), rank_arg(info, 1), int_arg(info, 2), millis_arg(info, 3)));
    });
  }
  // wait(id): true once the work is done (throws its error), after blocking until it is; false
  // when the device's current stream was made to wait for it instead (NCCL: its outcome is
  // reported later). A work already reported to JS (or unknown) returns true at once.
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      Napi::Boolean done = Napi::Boolean::New(info.Env(), true);
      auto it = completion_->pending.find(uint64_t(int_arg(info, 0)));
      if (it == completion_->pending.end()) return done;
      std::shared_ptr<dist::Work> work = it->second;
      if (group_ && !destroyed_ && group_->order_after(work)) return Napi::Boolean::New(info.Env(), false);
      work->claimed = true;
      work->wait();
      completion_->remove(info.Env(), work->id);
      if (work->code()) throw Error(work->code(), work->message());
      return done;
    });
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    destroyed_ = true;
    stop();
    return info.Env().Undefined();
  }

  std::unique_ptr<dist::ProcessGroup> group_;
  std::shared_ptr<Completion> completion_;
  bool destroyed_ = false;
};

}  // namespace

void register_dist(Napi::Env env, Napi::Object exports) {
  exports.Set("StoreServer", StoreServerWrap::define_class(env));
  exports.Set("StoreClient", StoreClientWrap::define_class(env));
  exports.Set("GlooGroup", GroupWrap<make_gloo>::define_class(env, "GlooGroup"));
  exports.Set("NcclGroup", GroupWrap<make_nccl>::define_class(env, "NcclGroup"));
  exports.Set("ncclVersion", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), nccl().version()); });
              }));
}

}  // namespace ignis::napi
