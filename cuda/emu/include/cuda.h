// cuda-emu stand-in for <cuda.h>: the driver API subset (tensor maps) the kernels use.
#pragma once
#include "../cuda_emu.h"
#include "../emu_tensormap.h"
