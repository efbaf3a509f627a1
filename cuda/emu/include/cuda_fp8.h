// cuda-emu stand-in for <cuda_fp8.h>.
#pragma once
#include "../cuda_emu.h"
