"""The CO-RE engine: clang + vmlinux.h + libbpf, for whole libbpf programs in a cell."""
