"""Django settings and URLs used only by the benchmarks (never by production)."""
