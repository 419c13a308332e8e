# Numerics test extras (include()d from tests/CMakeLists.txt).
# num.test_torch runs tests/num/torch_ref.py with OT_PYTHON (PyTorch import + ~1.2M values,
# about 4 s); give it headroom on slow CI machines and a label to select it by.
set_tests_properties(num.test_torch PROPERTIES TIMEOUT 120 LABELS "num;torch")
