/* Body handed to cffi's set_source: the kernel and libc headers whose layouts and constants
 * the cdef in native.cdef refers to. Nothing else lives here on purpose: the logic stays in
 * Python (camera_service.devices), the C side only provides the real definitions. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/inotify.h>
#include <linux/videodev2.h>
