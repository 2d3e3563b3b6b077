// Kernels and their CPU references are added here (issue 5).
