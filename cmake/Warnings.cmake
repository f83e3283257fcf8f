# ps_warnings(target): the project's warning set. Third-party headers come in as SYSTEM includes
# (imported targets), so they stay quiet.
function(ps_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow=local -Wnon-virtual-dtor -Wno-unused-parameter>)
endfunction()
