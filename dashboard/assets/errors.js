// Collects the page's errors in window.__weftErrors: uncaught exceptions,
// rejected promises and console.error calls. Loaded before the app (as a
// classic script, so it runs first) for the browser tests and for anyone
// debugging a dashboard without devtools.
(function () {
  'use strict';
  const errors = [];
  window.__weftErrors = errors;
  window.addEventListener(
    'error',
    (event) => {
      const target = event.target;
      if (target && target !== window && target.tagName) {
        // A script, stylesheet or image that failed to load (capture phase:
        // such errors do not bubble).
        errors.push({ kind: 'resource', message: `${target.tagName} failed to load`, source: String(target.src || target.href || '') });
        return;
      }
      errors.push({ kind: 'error', message: String(event.message), source: String(event.filename || '') });
    },
    true,
  );
  document.addEventListener('securitypolicyviolation', (event) => {
    errors.push({ kind: 'csp', message: `${event.violatedDirective} blocked ${event.blockedURI}`, source: String(event.sourceFile || '') });
  });
  window.addEventListener('unhandledrejection', (event) => {
    errors.push({ kind: 'rejection', message: String(event.reason && event.reason.stack || event.reason) });
  });
  const consoleError = console.error.bind(console);
  console.error = (...args) => {
    errors.push({ kind: 'console', message: args.map(String).join(' ') });
    consoleError(...args);
  };
})();
