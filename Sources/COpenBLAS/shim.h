#include <cblas.h>
// Exported by OpenBLAS but not declared in Debian's cblas.h.
char *openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
