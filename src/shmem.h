/*-------------------------------------------------------------------------
 * shmem.h
 *	  Shared memory of stockx_enrich: requested at load, handed out at
 *	  startup to the files that own each part.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_SHMEM_H
#define STOCKX_SHMEM_H

extern void stockx_shmem_request(void);
extern void stockx_shmem_startup(void);
extern void stockx_check_shared(void);

#endif /* STOCKX_SHMEM_H */
