/* The pod sandbox's infra process for the ImageVolume conformance suite's own pause image.
 * It only holds the pod's namespaces open: sleep until SIGINT or SIGTERM, and, as PID 1 of
 * the pod, reap every orphan that is re-parented to it so no zombie outlives its container. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static volatile sig_atomic_t stopping;

static void on_stop(int sig) { (void)sig; stopping = 1; }

static void on_child(int sig) {
	int saved = errno; /* a handler must not clobber errno of the code it interrupted */
	(void)sig;
	while (waitpid(-1, 0, WNOHANG) > 0) {}
	errno = saved;
}

int main(void) {
	struct sigaction sa = {0};
	sigset_t wanted, others;

	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	if (sigaction(SIGINT, &sa, 0) || sigaction(SIGTERM, &sa, 0)) return 1;
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &sa, 0)) return 1;

	/* Keep the signals blocked except inside sigsuspend, so none can slip in between the
	 * check of `stopping` and the wait and leave us sleeping through a stop request. */
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGINT);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGCHLD);
	sigprocmask(SIG_BLOCK, &wanted, &others);
	while (!stopping) sigsuspend(&others);
	return 0;
}
