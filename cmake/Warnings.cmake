# mcos_set_warnings(target): -Wall -Wextra on our own code only (generated code and system headers
# are left alone), as errors when MCOS_WERROR is on: in the presets and CI, not in a packager's
# plain `cmake -DCMAKE_BUILD_TYPE=Release` build, where another compiler's new or false warning
# (GCC 12's -Wrestrict on std::string, for one) must not break the build.
option(MCOS_WERROR "Treat warnings in MCOS's own code as errors" OFF)
function(mcos_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(MCOS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
endfunction()
