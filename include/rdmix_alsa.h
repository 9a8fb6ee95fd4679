/* The parts of alsa-lib's plugin API that alsa-sys does not cover:
 * the ioplug (external I/O PCM) and ctl_ext (external control) interfaces, and the
 * SNDERR hook. */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <alsa/control_external.h>
