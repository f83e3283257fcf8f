// The project's version, as CMake's project() declares it, for `--version` and `psctl version`.
#pragma once

namespace ps {

const char* ProjectVersion();  // "0.1.0"
const char* BuildType();       // CMake build type, "" when none was set
inline constexpr const char* kApiVersion = "proxsparse.v1";

}  // namespace ps
