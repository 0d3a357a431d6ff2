/* SHIM of the firmware's generated include/generated/autoconf.h: the app's app-config. */
#define CONFIG_APP_ENABLE 1
#define CONFIG_APP_PRIORITY 1
#define CONFIG_APP_STACKSIZE 350
#define CONFIG_CONTROLLER_OOT 1
