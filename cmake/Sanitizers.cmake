# MCOS_SANITIZE=address,undefined builds everything with ASan+UBSan (the `asan` preset).
set(MCOS_SANITIZE "" CACHE STRING "Comma-separated -fsanitize= list (e.g. address,undefined)")
if(MCOS_SANITIZE)
  add_compile_options(-fsanitize=${MCOS_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${MCOS_SANITIZE})
endif()
