// debugRaise: queues a task that throws while running, so tests can check that stream errors
// reach the next sync point with the op's name. Not part of the public ops list.
#include "args.h"
#include "dispatch.h"

namespace dsn {

/** debugRaise(x, message): after the ops queued before it, raise `message` on x's stream. */
static Napi::Value DebugRaise(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugRaise");
    TensorRef x = a.tensor(0, "x");
    std::string message = a.string(1, "message");
    if (x->device.type != DeviceType::CPU) throwType("debugRaise: x must be on the cpu");
    enqueueCpu("debugRaise", {x}, [message](ThreadPool&) { throwRange(message); });
    return info.Env().Undefined();
  });
}

DSN_OP("debugRaise", DebugRaise);

}  // namespace dsn
