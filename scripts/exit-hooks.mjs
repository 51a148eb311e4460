// Cleanup of child processes when this process exits or is signalled.
//
//   const hooks = exitHooks(killEverythingNow)   // a synchronous cleanup
//   hooks.install()   // while there is something to clean up
//   hooks.remove()    // once there is nothing left
//
// On SIGINT/SIGTERM it cleans up, removes itself and, if nobody else handles
// the signal, re-raises it, so the process still dies as it would have.
export function exitHooks (cleanupNow) {
  let installed = false
  const onSignal = signal => {
    cleanupNow()
    remove()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  function install () {
    if (installed) return
    installed = true
    process.on('exit', cleanupNow)
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  }
  function remove () {
    if (!installed) return
    installed = false
    process.off('exit', cleanupNow)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  return { install, remove }
}
