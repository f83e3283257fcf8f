#include "common/version.h"

namespace ps {

const char* ProjectVersion() { return PS_PROJECT_VERSION; }
const char* BuildType() { return PS_BUILD_TYPE; }

}  // namespace ps
