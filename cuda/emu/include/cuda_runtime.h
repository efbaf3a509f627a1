// cuda-emu stand-in for <cuda_runtime.h>: the emulated runtime API and device built-ins.
#pragma once
#include "../cuda_emu.h"
