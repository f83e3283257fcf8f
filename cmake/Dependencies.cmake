# Finds every dependency once, from Debian's packages (or, on the GPU machine, from the CUDA
# LibTorch of its Python plus the bundle made by tools/make-device-deps.sh).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(OpenSSL REQUIRED)  # SHA-256 of data and checkpoints
find_package(ZLIB REQUIRED)     # gzip'd JSON lines
find_package(PkgConfig REQUIRED)
find_package(CLI11 CONFIG REQUIRED)

if(PS_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

if(PS_BUILD_WORKER)
  find_package(Torch REQUIRED)
  find_package(MPI REQUIRED COMPONENTS CXX)
  pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
  pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
  # A CUDA LibTorch defines torch_cuda; then the CUDA kernels are built and linked in.
  if(TARGET torch_cuda)
    set(PS_WITH_CUDA ON)
  else()
    set(PS_WITH_CUDA OFF)
  endif()
  message(STATUS "proxsparse: LibTorch ${Torch_VERSION}, CUDA ${PS_WITH_CUDA}")
endif()

# CUDA: enabled for real with a CUDA LibTorch; otherwise, if nvcc exists, the raw-pointer kernels
# are still compiled (not linked) so that breakage shows up on machines without a GPU.
set(PS_CUDA_COMPILE_ONLY OFF)
if(PS_WITH_CUDA OR PS_CUDA_COMPILE_CHECK)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    if(NOT PS_WITH_CUDA)
      set(PS_CUDA_COMPILE_ONLY ON)
    endif()
  elseif(PS_WITH_CUDA)
    message(FATAL_ERROR "LibTorch has CUDA but no CUDA compiler was found")
  endif()
endif()

if(PS_BUILD_SERVICE)
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  find_package(SQLite3 REQUIRED)
  find_path(HTTPLIB_INCLUDE_DIR httplib.h REQUIRED)
endif()
