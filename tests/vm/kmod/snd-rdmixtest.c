// SPDX-License-Identifier: GPL-2.0
/*
 * snd-rdmixtest: the copy-only sound card the rdmix tests run on inside a VM.
 *
 * It is the driver rdmix exists for: copy callbacks (copy_user, copy_kernel, fill_silence)
 * and no SNDRV_PCM_INFO_MMAP, so alsa-lib offers read/write access only and dmix refuses it.
 * Each stream has an intermediate buffer that an hrtimer drains (playback) or fills
 * (capture) at the real rate, as the kernel's pcm-indirect technique does.
 *
 * What a test needs of it, through debugfs (/sys/kernel/debug/snd-rdmixtest/):
 *   played   every frame playback consumed, in order (S16_LE stereo); reading it is exact
 *   status   counters, one "name value" a line (played_ns: CLOCK_MONOTONIC ns of the
 *            update that last grew `played`; stalls: updates that found more than a
 *            buffer of time gone, so the guest itself stood still)
 *   ctl      write one command a line:
 *              reset             empty `played`, zero the counters and the capture counter
 *              suspend | resume  suspend every PCM (clients see -ESTRPIPE), power back up
 *              disconnect        unplug the card; connect makes a new one
 *              xrun              stop every running stream in xrun
 *              batch 0|1         hw_ptr moves only at period boundaries (SNDRV_PCM_INFO_BATCH)
 *              slow US           every copy sleeps US microseconds first
 *              eio N             the next N copies fail with -EIO (-1: all of them)
 *
 * Capture produces a known signal: frame k holds k (mod 65536) on the left channel and its
 * bitwise complement on the right, k counting every frame captured since load or reset.
 *
 * Built for 6.1's snd_pcm_ops; 6.6 replaced copy_user and copy_kernel with copy.
 */
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/hrtimer.h>
#include <linux/debugfs.h>
#include <linux/vmalloc.h>
#include <linux/uaccess.h>
#include <linux/delay.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <sound/core.h>
#include <sound/pcm.h>
#include <sound/initval.h>

MODULE_DESCRIPTION("rdmix's copy-only test sound card");
MODULE_LICENSE("GPL");

static int tape_seconds = 120;
module_param(tape_seconds, int, 0444);
MODULE_PARM_DESC(tape_seconds, "Seconds of playback kept for read-back.");
static bool batch;
module_param(batch, bool, 0644);
MODULE_PARM_DESC(batch, "hw_ptr moves only at period boundaries.");
static bool resumable = true;
module_param(resumable, bool, 0444);
MODULE_PARM_DESC(resumable, "Offer SNDRV_PCM_INFO_RESUME.");

#define RT_FRAME_BYTES 4 /* S16_LE stereo, the only format */

struct rt_stream {
	struct snd_pcm_substream *ss;
	struct hrtimer timer;
	spinlock_t lock;
	u8 *buf;
	unsigned int rate;
	unsigned int period;	/* frames */
	unsigned int buffer;	/* frames */
	u64 done;		/* frames moved since prepare */
	u64 start_done;		/* done at the last start or resume */
	u64 start_ns;
	u64 last_elapsed;	/* the period index last reported */
	bool running;
};

static struct {
	struct mutex lock;	/* the card, and commands; never taken under a PCM's own locks */
	spinlock_t streams_lock; /* streams: open and close run under the PCM's open_mutex */
	struct platform_device *pdev;
	struct snd_card *card;
	struct snd_pcm *pcm;
	struct rt_stream *streams[2];
	struct dentry *dir;
	spinlock_t tape_lock;
	u8 *tape;
	size_t tape_len, tape_cap;
	/* CLOCK_MONOTONIC ns of the update that last grew the tape: with tape_len, the tape
	 * frame playing at any moment after it while the stream runs on. */
	u64 tape_ns;
	u64 tape_dropped;
	u64 counter;		/* capture's frame counter */
	atomic_t slow_us;
	atomic_t fail_copies;
	atomic64_t copies, failed_copies, xruns_forced, suspends, elapsed;
	/* Updates that found more than a buffer of real time gone since the last: the guest
	 * itself stood still (a starved TCG vCPU), and the pointer wrapped unseen. */
	atomic64_t stalls;
} rt;

static const struct snd_pcm_hardware rt_hw = {
	.info = SNDRV_PCM_INFO_INTERLEAVED,
	.formats = SNDRV_PCM_FMTBIT_S16_LE,
	.rates = SNDRV_PCM_RATE_44100 | SNDRV_PCM_RATE_48000,
	.rate_min = 44100,
	.rate_max = 48000,
	.channels_min = 2,
	.channels_max = 2,
	.buffer_bytes_max = 512 * 1024,
	.period_bytes_min = 64,
	.period_bytes_max = 128 * 1024,
	.periods_min = 2,
	.periods_max = 1024,
};

/* Frames of real time since the last start, rounded to periods for a batch pointer. */
static u64 rt_target(struct rt_stream *s, u64 now)
{
	u64 frames = div_u64((now - s->start_ns) * s->rate, NSEC_PER_SEC);

	if (READ_ONCE(batch)) {
		do_div(frames, s->period);
		frames *= s->period;
	}
	return s->start_done + frames;
}

/* Moves the stream to now: drains played frames to the tape, or captures new ones. */
static void rt_update(struct rt_stream *s)
{
	u64 target, f, now;
	unsigned long flags;

	if (!s->running)
		return;
	now = ktime_get_ns();
	target = rt_target(s, now);
	if (target <= s->done)
		return;
	if (target - s->done > s->buffer)
		atomic64_inc(&rt.stalls);
	if (s->ss->stream == SNDRV_PCM_STREAM_PLAYBACK) {
		size_t len;

		spin_lock_irqsave(&rt.tape_lock, flags);
		/* The length grows once, when every frame is in: a status read on another CPU
		 * never sees a copy half done (it once named a frame 3 ms stale). */
		len = rt.tape_len;
		for (f = s->done; f < target; f++) {
			if (len + RT_FRAME_BYTES > rt.tape_cap) {
				rt.tape_dropped += target - f;
				break;
			}
			memcpy(rt.tape + len, s->buf + (f % s->buffer) * RT_FRAME_BYTES, RT_FRAME_BYTES);
			len += RT_FRAME_BYTES;
		}
		rt.tape_len = len;
		rt.tape_ns = now;
		spin_unlock_irqrestore(&rt.tape_lock, flags);
	} else {
		spin_lock_irqsave(&rt.tape_lock, flags);
		for (f = s->done; f < target; f++) {
			u16 k = (u16)rt.counter++;
			__le16 *frame = (__le16 *)(s->buf + (f % s->buffer) * RT_FRAME_BYTES);

			frame[0] = cpu_to_le16(k);
			frame[1] = cpu_to_le16((u16)~k);
		}
		spin_unlock_irqrestore(&rt.tape_lock, flags);
	}
	s->done = target;
}

static u64 rt_period_ns(struct rt_stream *s, u64 index)
{
	return div_u64(index * s->period * NSEC_PER_SEC, s->rate);
}

static enum hrtimer_restart rt_tick(struct hrtimer *t)
{
	struct rt_stream *s = container_of(t, struct rt_stream, timer);
	unsigned long flags;
	bool elapsed = false;
	u64 index;

	spin_lock_irqsave(&s->lock, flags);
	if (!s->running) {
		spin_unlock_irqrestore(&s->lock, flags);
		return HRTIMER_NORESTART;
	}
	rt_update(s);
	index = div_u64(s->done - s->start_done, s->period);
	if (index != s->last_elapsed) {
		s->last_elapsed = index;
		elapsed = true;
	}
	hrtimer_set_expires(t, ns_to_ktime(s->start_ns + rt_period_ns(s, index + 1)));
	spin_unlock_irqrestore(&s->lock, flags);
	if (elapsed) {
		atomic64_inc(&rt.elapsed);
		snd_pcm_period_elapsed(s->ss);
	}
	return HRTIMER_RESTART;
}

static int rt_open(struct snd_pcm_substream *ss)
{
	struct rt_stream *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return -ENOMEM;
	s->ss = ss;
	spin_lock_init(&s->lock);
	hrtimer_init(&s->timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS_SOFT);
	s->timer.function = rt_tick;
	ss->runtime->private_data = s;
	ss->runtime->hw = rt_hw;
	if (READ_ONCE(batch))
		ss->runtime->hw.info |= SNDRV_PCM_INFO_BATCH;
	if (resumable)
		ss->runtime->hw.info |= SNDRV_PCM_INFO_RESUME;
	spin_lock_irq(&rt.streams_lock);
	rt.streams[ss->stream] = s;
	spin_unlock_irq(&rt.streams_lock);
	return 0;
}

static int rt_close(struct snd_pcm_substream *ss)
{
	struct rt_stream *s = ss->runtime->private_data;

	hrtimer_cancel(&s->timer);
	spin_lock_irq(&rt.streams_lock);
	rt.streams[ss->stream] = NULL;
	spin_unlock_irq(&rt.streams_lock);
	vfree(s->buf);
	kfree(s);
	return 0;
}

static int rt_hw_params(struct snd_pcm_substream *ss, struct snd_pcm_hw_params *p)
{
	struct rt_stream *s = ss->runtime->private_data;
	size_t bytes = params_buffer_bytes(p);

	vfree(s->buf);
	s->buf = vzalloc(bytes);
	if (!s->buf)
		return -ENOMEM;
	ss->runtime->dma_bytes = bytes;
	return 0;
}

static int rt_hw_free(struct snd_pcm_substream *ss)
{
	struct rt_stream *s = ss->runtime->private_data;

	hrtimer_cancel(&s->timer);
	vfree(s->buf);
	s->buf = NULL;
	return 0;
}

static int rt_prepare(struct snd_pcm_substream *ss)
{
	struct rt_stream *s = ss->runtime->private_data;
	struct snd_pcm_runtime *r = ss->runtime;
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	s->rate = r->rate;
	s->period = r->period_size;
	s->buffer = r->buffer_size;
	s->done = 0;
	s->running = false;
	spin_unlock_irqrestore(&s->lock, flags);
	return 0;
}

static int rt_trigger(struct snd_pcm_substream *ss, int cmd)
{
	struct rt_stream *s = ss->runtime->private_data;
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	switch (cmd) {
	case SNDRV_PCM_TRIGGER_START:
	case SNDRV_PCM_TRIGGER_RESUME:
		s->start_ns = ktime_get_ns();
		s->start_done = s->done;
		s->last_elapsed = 0;
		s->running = true;
		hrtimer_start(&s->timer, ns_to_ktime(s->start_ns + rt_period_ns(s, 1)),
			      HRTIMER_MODE_ABS_SOFT);
		break;
	case SNDRV_PCM_TRIGGER_STOP:
	case SNDRV_PCM_TRIGGER_SUSPEND:
		rt_update(s);
		s->running = false;
		hrtimer_try_to_cancel(&s->timer);
		break;
	default:
		spin_unlock_irqrestore(&s->lock, flags);
		return -EINVAL;
	}
	spin_unlock_irqrestore(&s->lock, flags);
	return 0;
}

static int rt_sync_stop(struct snd_pcm_substream *ss)
{
	struct rt_stream *s = ss->runtime->private_data;

	hrtimer_cancel(&s->timer);
	return 0;
}

static snd_pcm_uframes_t rt_pointer(struct snd_pcm_substream *ss)
{
	struct rt_stream *s = ss->runtime->private_data;
	unsigned long flags;
	snd_pcm_uframes_t pos;

	spin_lock_irqsave(&s->lock, flags);
	rt_update(s);
	pos = s->buffer ? s->done % s->buffer : 0;
	spin_unlock_irqrestore(&s->lock, flags);
	return pos;
}

/* Every copy passes here: the injected slowness and failures. */
static int rt_copy_fault(void)
{
	int us = atomic_read(&rt.slow_us);
	int fail;

	atomic64_inc(&rt.copies);
	if (us > 0)
		usleep_range(us, us + 50);
	fail = atomic_read(&rt.fail_copies);
	if (fail == 0)
		return 0;
	if (fail > 0)
		atomic_dec(&rt.fail_copies);
	atomic64_inc(&rt.failed_copies);
	return -EIO;
}

static bool rt_span_ok(struct rt_stream *s, unsigned long pos, unsigned long bytes)
{
	return s->buf && pos + bytes <= (unsigned long)s->buffer * RT_FRAME_BYTES;
}

static int rt_copy_user(struct snd_pcm_substream *ss, int channel, unsigned long pos,
			void __user *ubuf, unsigned long bytes)
{
	struct rt_stream *s = ss->runtime->private_data;
	int err = rt_copy_fault();

	if (err)
		return err;
	if (!rt_span_ok(s, pos, bytes))
		return -EINVAL;
	if (ss->stream == SNDRV_PCM_STREAM_PLAYBACK)
		return copy_from_user(s->buf + pos, ubuf, bytes) ? -EFAULT : 0;
	return copy_to_user(ubuf, s->buf + pos, bytes) ? -EFAULT : 0;
}

static int rt_copy_kernel(struct snd_pcm_substream *ss, int channel, unsigned long pos,
			  void *kbuf, unsigned long bytes)
{
	struct rt_stream *s = ss->runtime->private_data;
	int err = rt_copy_fault();

	if (err)
		return err;
	if (!rt_span_ok(s, pos, bytes))
		return -EINVAL;
	if (ss->stream == SNDRV_PCM_STREAM_PLAYBACK)
		memcpy(s->buf + pos, kbuf, bytes);
	else
		memcpy(kbuf, s->buf + pos, bytes);
	return 0;
}

static int rt_fill_silence(struct snd_pcm_substream *ss, int channel, unsigned long pos,
			   unsigned long bytes)
{
	struct rt_stream *s = ss->runtime->private_data;

	if (!rt_span_ok(s, pos, bytes))
		return -EINVAL;
	memset(s->buf + pos, 0, bytes);
	return 0;
}

static const struct snd_pcm_ops rt_ops = {
	.open = rt_open,
	.close = rt_close,
	.hw_params = rt_hw_params,
	.hw_free = rt_hw_free,
	.prepare = rt_prepare,
	.trigger = rt_trigger,
	.sync_stop = rt_sync_stop,
	.pointer = rt_pointer,
	.copy_user = rt_copy_user,
	.copy_kernel = rt_copy_kernel,
	.fill_silence = rt_fill_silence,
};

static int rt_card_new(void)
{
	struct snd_card *card;
	struct snd_pcm *pcm;
	int err;

	err = snd_card_new(&rt.pdev->dev, -1, "RdmixTest", THIS_MODULE, 0, &card);
	if (err < 0)
		return err;
	strscpy(card->driver, "RdmixTest", sizeof(card->driver));
	strscpy(card->shortname, "rdmix copy-only test card", sizeof(card->shortname));
	strscpy(card->longname, "rdmix copy-only test card (no mmap)", sizeof(card->longname));
	err = snd_pcm_new(card, "rdmixtest", 0, 1, 1, &pcm);
	if (err < 0)
		goto fail;
	strscpy(pcm->name, "copy-only", sizeof(pcm->name));
	snd_pcm_set_ops(pcm, SNDRV_PCM_STREAM_PLAYBACK, &rt_ops);
	snd_pcm_set_ops(pcm, SNDRV_PCM_STREAM_CAPTURE, &rt_ops);
	err = snd_card_register(card);
	if (err < 0)
		goto fail;
	rt.card = card;
	rt.pcm = pcm;
	return 0;
fail:
	snd_card_free(card);
	return err;
}

static void rt_reset(void)
{
	unsigned long flags;

	spin_lock_irqsave(&rt.tape_lock, flags);
	rt.tape_len = 0;
	rt.tape_ns = 0;
	rt.tape_dropped = 0;
	rt.counter = 0;
	spin_unlock_irqrestore(&rt.tape_lock, flags);
	atomic64_set(&rt.copies, 0);
	atomic64_set(&rt.failed_copies, 0);
	atomic64_set(&rt.xruns_forced, 0);
	atomic64_set(&rt.suspends, 0);
	atomic64_set(&rt.elapsed, 0);
}

/* One command; rt.lock held. */
static int rt_command(char *cmd)
{
	int n;

	if (!strcmp(cmd, "reset")) {
		rt_reset();
	} else if (!strcmp(cmd, "suspend")) {
		if (!rt.card)
			return -ENODEV;
		snd_power_change_state(rt.card, SNDRV_CTL_POWER_D3hot);
		snd_pcm_suspend_all(rt.pcm);
		atomic64_inc(&rt.suspends);
	} else if (!strcmp(cmd, "resume")) {
		if (!rt.card)
			return -ENODEV;
		snd_power_change_state(rt.card, SNDRV_CTL_POWER_D0);
	} else if (!strcmp(cmd, "disconnect")) {
		if (!rt.card)
			return -ENODEV;
		snd_card_disconnect(rt.card);
		snd_card_free_when_closed(rt.card);
		rt.card = NULL;
		rt.pcm = NULL;
	} else if (!strcmp(cmd, "connect")) {
		return rt.card ? 0 : rt_card_new();
	} else if (!strcmp(cmd, "xrun")) {
		int i;

		/* The table's lock keeps a stream from closing under us; the PCM is atomic, so
		 * its stream lock, taken by snd_pcm_stop_xrun, is a spinlock too. */
		spin_lock_irq(&rt.streams_lock);
		for (i = 0; i < 2; i++) {
			if (rt.streams[i]) {
				snd_pcm_stop_xrun(rt.streams[i]->ss);
				atomic64_inc(&rt.xruns_forced);
			}
		}
		spin_unlock_irq(&rt.streams_lock);
	} else if (sscanf(cmd, "batch %d", &n) == 1) {
		WRITE_ONCE(batch, n != 0);
	} else if (sscanf(cmd, "slow %d", &n) == 1) {
		atomic_set(&rt.slow_us, max(n, 0));
	} else if (sscanf(cmd, "eio %d", &n) == 1) {
		atomic_set(&rt.fail_copies, n);
	} else {
		return -EINVAL;
	}
	return 0;
}

static ssize_t rt_ctl_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	char cmd[64];
	int err;

	if (len >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, ubuf, len))
		return -EFAULT;
	cmd[len] = 0;
	strim(cmd);
	mutex_lock(&rt.lock);
	err = rt_command(strim(cmd));
	mutex_unlock(&rt.lock);
	return err ? err : len;
}

static const struct file_operations rt_ctl_fops = {
	.owner = THIS_MODULE,
	.write = rt_ctl_write,
	.llseek = noop_llseek,
};

static ssize_t rt_played_read(struct file *f, char __user *ubuf, size_t len, loff_t *off)
{
	unsigned long flags;
	size_t have;

	spin_lock_irqsave(&rt.tape_lock, flags);
	have = rt.tape_len;
	spin_unlock_irqrestore(&rt.tape_lock, flags);
	/* The tape only grows, and below `have` it no longer changes. */
	return simple_read_from_buffer(ubuf, len, off, rt.tape, have);
}

static const struct file_operations rt_played_fops = {
	.owner = THIS_MODULE,
	.read = rt_played_read,
	.llseek = default_llseek,
};

static ssize_t rt_status_read(struct file *f, char __user *ubuf, size_t len, loff_t *off)
{
	char text[512];
	unsigned long flags;
	size_t tape_len;
	u64 tape_ns, dropped, counter;
	int n;

	spin_lock_irqsave(&rt.tape_lock, flags);
	tape_len = rt.tape_len;
	tape_ns = rt.tape_ns;
	dropped = rt.tape_dropped;
	counter = rt.counter;
	spin_unlock_irqrestore(&rt.tape_lock, flags);
	mutex_lock(&rt.lock);
	n = scnprintf(text, sizeof(text),
		      "card %d\nbatch %d\nplayed_frames %zu\nplayed_ns %llu\ntape_dropped %llu\n"
		      "captured_frames %llu\ncopies %lld\nfailed_copies %lld\nxruns_forced %lld\n"
		      "suspends %lld\nperiods_elapsed %lld\nstalls %lld\n",
		      rt.card ? rt.card->number : -1, READ_ONCE(batch), tape_len / RT_FRAME_BYTES,
		      tape_ns, dropped, counter, atomic64_read(&rt.copies),
		      atomic64_read(&rt.failed_copies), atomic64_read(&rt.xruns_forced),
		      atomic64_read(&rt.suspends), atomic64_read(&rt.elapsed),
		      atomic64_read(&rt.stalls));
	mutex_unlock(&rt.lock);
	return simple_read_from_buffer(ubuf, len, off, text, n);
}

static const struct file_operations rt_status_fops = {
	.owner = THIS_MODULE,
	.read = rt_status_read,
	.llseek = default_llseek,
};

static int __init rt_init(void)
{
	int err;

	mutex_init(&rt.lock);
	spin_lock_init(&rt.streams_lock);
	spin_lock_init(&rt.tape_lock);
	rt.tape_cap = (size_t)max(tape_seconds, 1) * 48000 * RT_FRAME_BYTES;
	rt.tape = vmalloc(rt.tape_cap);
	if (!rt.tape)
		return -ENOMEM;
	rt.pdev = platform_device_register_simple("snd_rdmixtest", 0, NULL, 0);
	if (IS_ERR(rt.pdev)) {
		err = PTR_ERR(rt.pdev);
		goto fail_tape;
	}
	err = rt_card_new();
	if (err < 0)
		goto fail_pdev;
	rt.dir = debugfs_create_dir("snd-rdmixtest", NULL);
	debugfs_create_file("ctl", 0200, rt.dir, NULL, &rt_ctl_fops);
	debugfs_create_file("played", 0444, rt.dir, NULL, &rt_played_fops);
	debugfs_create_file("status", 0444, rt.dir, NULL, &rt_status_fops);
	return 0;
fail_pdev:
	platform_device_unregister(rt.pdev);
fail_tape:
	vfree(rt.tape);
	return err;
}

static void __exit rt_exit(void)
{
	debugfs_remove_recursive(rt.dir);
	if (rt.card)
		snd_card_free(rt.card);
	platform_device_unregister(rt.pdev);
	vfree(rt.tape);
}

module_init(rt_init);
module_exit(rt_exit);
