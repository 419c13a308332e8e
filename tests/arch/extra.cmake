# Extras for the arch tests (included from tests/CMakeLists.txt).

# `cmake --build <build> --target chip-docs` rewrites the generated section of docs/chips.md
# from the field table and the presets; arch.test_chip_docs fails while it is stale.
add_custom_target(chip-docs
  COMMAND arch_test_chip_docs --update
  DEPENDS arch_test_chip_docs
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  COMMENT "Regenerating the field reference in docs/chips.md"
  VERBATIM)

# The CLI test runs the opentrn binary: build it first.
if(TARGET arch_test_chip_cli AND TARGET opentrn_cli)
  add_dependencies(arch_test_chip_cli opentrn_cli)
endif()
