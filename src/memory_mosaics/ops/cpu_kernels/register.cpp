// The op schemas (namespace memory_mosaics); key_path.cpp and value_path.cpp register the CPU kernels.
// Outputs are passed in, allocated by the Python caller in the memory order its consumers read fastest.
#include <torch/library.h>

TORCH_LIBRARY(memory_mosaics, m) {
  m.def("key_path_forward(Tensor x, Tensor lam, Tensor scale, Tensor(a!) out, Tensor(b!) norm) -> ()");
  m.def("key_path_backward(Tensor grad, Tensor k, Tensor norm, Tensor lam, Tensor scale, Tensor(a!) grad_x, "
        "Tensor(b!) grad_lam, Tensor(c!) grad_scale) -> ()");
  m.def("value_path_forward(Tensor x, Tensor scale, Tensor? gamma, Tensor(a!) out, Tensor(b!) norm) -> ()");
  m.def("value_path_backward(Tensor grad, Tensor y, Tensor norm, Tensor x, Tensor scale, Tensor? gamma, "
        "Tensor(a!) grad_x, Tensor(b!) grad_scale, Tensor(c!) grad_gamma) -> ()");
}
