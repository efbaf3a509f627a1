# cuda-emu build (included by CMakeLists.txt when DSN_CUDA_EMU=ON): every cuda/*.cu rewritten by
# cuda/emu/rewrite.cjs and compiled as host C++ against cuda/emu/, plus the same CUDA backend glue
# as the real CUDA build; and cuda_emu_test, the emulator's own unit tests (test/cuda-emu/*.cu).
file(GLOB DSN_EMU_CU CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/cuda/*.cu)
file(GLOB DSN_EMU_TEST_CU CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/test/cuda-emu/*.cu)
set(DSN_EMU_REWRITE ${CMAKE_SOURCE_DIR}/cuda/emu/rewrite.cjs)
find_program(DSN_NODE node REQUIRED)
function(dsn_emu_rewrite out_var)
  set(outs)
  foreach(cu ${ARGN})
    file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${cu})
    string(REGEX REPLACE "\\.cu$" ".cc" rel_cc ${rel})
    set(out ${CMAKE_BINARY_DIR}/emu-gen/${rel_cc})
    add_custom_command(OUTPUT ${out} COMMAND ${DSN_NODE} ${DSN_EMU_REWRITE} ${cu} ${out}
      DEPENDS ${cu} ${DSN_EMU_REWRITE} COMMENT "cuda-emu: rewriting ${rel}" VERBATIM)
    list(APPEND outs ${out})
  endforeach()
  set(${out_var} ${outs} PARENT_SCOPE)
endfunction()
dsn_emu_rewrite(DSN_EMU_GEN ${DSN_EMU_CU})
dsn_emu_rewrite(DSN_EMU_TEST_GEN ${DSN_EMU_TEST_CU})
set(DSN_EMU_CORE ${CMAKE_SOURCE_DIR}/cuda/emu/device.cc ${CMAKE_SOURCE_DIR}/cuda/emu/runtime.cc ${CMAKE_SOURCE_DIR}/cuda/emu/tensormap.cc)
add_library(dsn_cuda_emu STATIC ${DSN_EMU_CORE})
set_target_properties(dsn_cuda_emu PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(dsn_cuda_emu PUBLIC ${CMAKE_SOURCE_DIR}/cuda/emu/include)
target_link_libraries(dsn_cuda_emu PUBLIC pthread)

target_sources(${PROJECT_NAME} PRIVATE ${DSN_EMU_GEN} ${CMAKE_SOURCE_DIR}/native/runtime/cuda_backend.cc)
target_compile_definitions(${PROJECT_NAME} PRIVATE DSN_WITH_CUDA DSN_CUDA_EMU)
target_include_directories(${PROJECT_NAME} PRIVATE ${CMAKE_SOURCE_DIR}/cuda/emu/include)
# rewritten files live in the build folder: their quoted includes resolve against cuda/
set_source_files_properties(${DSN_EMU_GEN} PROPERTIES COMPILE_OPTIONS "-iquote;${CMAKE_SOURCE_DIR}/cuda")
target_link_libraries(${PROJECT_NAME} PRIVATE dsn_cuda_emu)

if(DSN_EMU_TEST_GEN)
  add_executable(cuda_emu_test ${DSN_EMU_TEST_GEN})
  target_compile_options(cuda_emu_test PRIVATE "SHELL:-iquote ${CMAKE_SOURCE_DIR}/test/cuda-emu" "SHELL:-iquote ${CMAKE_SOURCE_DIR}/cuda")
  target_link_libraries(cuda_emu_test PRIVATE dsn_cuda_emu)
endif()
