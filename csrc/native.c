/* Body handed to cffi's set_source: the kernel and libc headers whose layouts and constants
 * the cdef in native.cdef refers to. The logic stays in Python (camera_service.devices); the C
 * side only provides the real definitions, plus accessors for union members that cffi cannot
 * declare partially. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/inotify.h>
#include <linux/videodev2.h>

static struct v4l2_pix_format *cs_format_pix(struct v4l2_format *f) { return &f->fmt.pix; }
static struct v4l2_pix_format_mplane *cs_format_pix_mp(struct v4l2_format *f) { return &f->fmt.pix_mp; }
static struct v4l2_captureparm *cs_streamparm_capture(struct v4l2_streamparm *p) { return &p->parm.capture; }
static uint32_t cs_buffer_offset(struct v4l2_buffer *b) { return b->m.offset; }
